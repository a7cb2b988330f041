package paxos

import (
	"fmt"
	"strings"
)

// Text descriptions of the protocol's values, stable enough for golden
// test files and readable in simulator traces.

// DescribeValue describes a slot's value: "noop", or its commands as
// clientID.seq:payload (payloads of printable text shown as text).
func DescribeValue(v []byte) string {
	if IsNoop(v) {
		return "noop"
	}
	if IsConfigValue(v) {
		c, err := DecodeConfigValue(v)
		if err != nil {
			return "config<" + err.Error() + ">"
		}
		return "config" + c.String()
	}
	var parts []string
	err := ForEachCommand(v, func(c Command) bool {
		parts = append(parts, fmt.Sprintf("%d.%d:%s", c.ClientID, c.Seq, printable(c.Payload)))
		return true
	})
	if err != nil {
		parts = append(parts, "<"+err.Error()+">")
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func printable(b []byte) string {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("%x", b)
		}
	}
	return string(b)
}

// DescribeEntry describes an entry as slot@ballot value.
func DescribeEntry(e Entry) string {
	return fmt.Sprintf("%d@%s %s", e.Slot, e.Ballot, DescribeValue(e.Value))
}

// DescribeMessage describes a message on one line.
func DescribeMessage(m Message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s->%s %s", m.From, m.To, m.Type)
	switch m.Type {
	case MsgPrePrepare:
		fmt.Fprintf(&b, " ballot=%s commit=%d poll=%s", m.Ballot, m.Commit, describeID(m.Context))
	case MsgPrePromise:
		fmt.Fprintf(&b, " promised=%s commit=%d poll=%s", m.Ballot, m.Commit, describeID(m.Context))
	case MsgPrepare:
		fmt.Fprintf(&b, " ballot=%s from=%d", m.Ballot, m.Slot)
	case MsgPromise:
		fmt.Fprintf(&b, " ballot=%s compacted=%d commit=%d", m.Ballot, m.Slot, m.Commit)
	case MsgAccept:
		fmt.Fprintf(&b, " ballot=%s prev=%d commit=%d", m.Ballot, m.Slot, m.Commit)
	case MsgAccepted:
		fmt.Fprintf(&b, " ballot=%s upto=%d", m.Ballot, m.Slot)
	case MsgNack:
		fmt.Fprintf(&b, " promised=%s", m.Ballot)
	case MsgHeartbeat:
		fmt.Fprintf(&b, " ballot=%s commit=%d round=%d", m.Ballot, m.Commit, m.Context)
	case MsgHeartbeatResp:
		fmt.Fprintf(&b, " ballot=%s upto=%d round=%d", m.Ballot, m.Slot, m.Context)
	case MsgPropose:
		fmt.Fprintf(&b, " %s", DescribeValue(m.Value))
	case MsgReadIndex:
		fmt.Fprintf(&b, " id=%s", describeID(m.Context))
	case MsgReadIndexResp:
		fmt.Fprintf(&b, " ballot=%s id=%s index=%d", m.Ballot, describeID(m.Context), m.Slot)
	}
	if m.Reject {
		b.WriteString(" reject")
	}
	if len(m.Entries) > 0 {
		ents := make([]string, len(m.Entries))
		for i, e := range m.Entries {
			ents[i] = DescribeEntry(e)
		}
		fmt.Fprintf(&b, " entries=[%s]", strings.Join(ents, ", "))
	}
	return b.String()
}

// DescribeReady describes a Ready over several lines, each indented by
// indent, leaving out what is empty.
func DescribeReady(rd Ready, indent string) string {
	var b strings.Builder
	sync := ""
	if rd.MustSync {
		sync = " (sync)"
	}
	if rd.HardState != nil {
		fmt.Fprintf(&b, "%sHardState promised=%s commit=%d%s\n", indent, rd.HardState.Promised, rd.HardState.Commit, sync)
		sync = ""
	}
	if len(rd.Entries) > 0 {
		fmt.Fprintf(&b, "%sEntries%s:\n", indent, sync)
		for _, e := range rd.Entries {
			fmt.Fprintf(&b, "%s  %s\n", indent, DescribeEntry(e))
		}
	}
	for _, group := range []struct {
		name string
		msgs []Message
	}{{"Messages", rd.Messages}, {"MessagesAfterPersist", rd.MessagesAfterPersist}} {
		if len(group.msgs) > 0 {
			fmt.Fprintf(&b, "%s%s:\n", indent, group.name)
			for _, m := range group.msgs {
				fmt.Fprintf(&b, "%s  %s\n", indent, DescribeMessage(m))
			}
		}
	}
	if len(rd.Committed) > 0 {
		fmt.Fprintf(&b, "%sCommitted:\n", indent)
		for _, e := range rd.Committed {
			fmt.Fprintf(&b, "%s  %s\n", indent, DescribeEntry(e))
		}
	}
	for _, r := range rd.ReadStates {
		fmt.Fprintf(&b, "%sReadState ctx=%d index=%d\n", indent, r.Context, r.Index)
	}
	for _, to := range rd.SendSnapshots {
		fmt.Fprintf(&b, "%sSendSnapshot to=%s\n", indent, to)
	}
	return b.String()
}

// describeID writes a request id as incarnation.count (see
// Config.Incarnation).
func describeID(id uint64) string { return fmt.Sprintf("%d.%d", id>>idBits, id&(1<<idBits-1)) }
