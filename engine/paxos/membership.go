package paxos

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Membership: the configuration is replicated state. It changes only by a
// configuration value chosen in a slot, and a configuration chosen in slot
// s governs the slots from s+ConfigWindow on (see doc.go for the rule and
// its safety argument).

// ConfigWindow is α of "Paxos Made Moderately Complex": a configuration
// chosen in slot s governs slots from s+ConfigWindow on. The leader sends
// an Accept for slot t only once it knows every slot up to t-ConfigWindow
// chosen, so it always knows the configuration of the slots it proposes;
// MaxInflightSlots may not exceed it. It is a constant of the protocol:
// every replica of a cluster must use the same.
const ConfigWindow = 32

// Member is a replica of a configuration.
type Member struct {
	ID NodeID
	// Voter says the replica's promises and acceptances count towards
	// quorums; a learner (Voter false) receives the log and snapshots only.
	Voter bool
	// PeerAddr and ClientAddr are where other replicas and clients reach
	// it; the core carries them for its caller and never reads them.
	PeerAddr, ClientAddr string
	// Since is the slot of the change that added the replica, 0 for those
	// the cluster was started with.
	Since uint64
}

// Configuration is the set of replicas that govern a range of slots.
type Configuration struct {
	// Members are sorted by ID.
	Members []Member
	// Removed lists the replicas removed from the cluster, sorted: their
	// IDs are never used again (a replica that lost its data must not come
	// back under its old ID; it forgot what it promised and accepted).
	Removed []NodeID
}

// Voters returns the IDs of the voting members, sorted.
func (c Configuration) Voters() []NodeID {
	var ids []NodeID
	for _, m := range c.Members {
		if m.Voter {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

// Learners returns the IDs of the members that do not vote, sorted.
func (c Configuration) Learners() []NodeID {
	var ids []NodeID
	for _, m := range c.Members {
		if !m.Voter {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

// Member returns the member id, if c has it.
func (c Configuration) Member(id NodeID) (Member, bool) {
	for _, m := range c.Members {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// IsVoter reports whether id is a voting member of c.
func (c Configuration) IsVoter(id NodeID) bool {
	m, ok := c.Member(id)
	return ok && m.Voter
}

// IsRemoved reports whether id was removed from the cluster.
func (c Configuration) IsRemoved(id NodeID) bool {
	_, ok := slices.BinarySearch(c.Removed, id)
	return ok
}

// quorum is the number of voters that make a majority of c.
func (c Configuration) quorum() int {
	v := 0
	for _, m := range c.Members {
		if m.Voter {
			v++
		}
	}
	return v/2 + 1
}

// Equal reports whether c and o are the same configuration.
func (c Configuration) Equal(o Configuration) bool {
	return slices.Equal(c.Members, o.Members) && slices.Equal(c.Removed, o.Removed)
}

// String lists the members' IDs, learners marked, for logs.
func (c Configuration) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range c.Members {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(m.ID.String())
		if !m.Voter {
			b.WriteString("(learner)")
		}
	}
	b.WriteByte('}')
	return b.String()
}

// Limits of a configuration, so that decoding one from the network or a
// disk allocates a bounded amount.
const (
	MaxMembers     = 64
	MaxRemoved     = 4096
	MaxAddressLen  = 256
	maxConfigBytes = 1 + 2*binary.MaxVarintLen64 + MaxMembers*(binary.MaxVarintLen64*2+1+2*(binary.MaxVarintLen64+MaxAddressLen)) + MaxRemoved*binary.MaxVarintLen64
)

// Errors of configuration changes.
var (
	// ErrBadChange is wrapped by the error for a change that cannot apply
	// to the configuration: an ID that is already a member, or was removed,
	// or is not a member; the last voter removed; a promotion of a voter.
	ErrBadChange = errors.New("paxos: invalid configuration change")
	// ErrChangeInProgress is returned for a configuration change or a
	// leadership transfer requested while another has not finished: one
	// change at a time.
	ErrChangeInProgress = errors.New("paxos: a configuration change or leadership transfer is in progress")
	// ErrNotLeader is returned for a configuration change or a leadership
	// transfer asked of a replica that is not the leader.
	ErrNotLeader = errors.New("paxos: not the leader")
	// ErrNotCaughtUp is returned for promoting a learner that is more than
	// Config.CatchUpSlots behind the commit index, or transferring
	// leadership to a replica the leader has not heard from.
	ErrNotCaughtUp = errors.New("paxos: the replica has not caught up")
)

// Validate checks that c is a configuration a cluster can run with: at
// least one voter, members sorted and unique, none also removed, the
// bounds respected.
func (c Configuration) Validate() error {
	if len(c.Members) > MaxMembers {
		return fmt.Errorf("%w: %d members, at most %d", ErrBadChange, len(c.Members), MaxMembers)
	}
	if len(c.Removed) > MaxRemoved {
		return fmt.Errorf("%w: %d removed replicas, at most %d", ErrBadChange, len(c.Removed), MaxRemoved)
	}
	voters := 0
	for i, m := range c.Members {
		if m.ID == None {
			return fmt.Errorf("%w: member None", ErrBadChange)
		}
		if i > 0 && c.Members[i-1].ID >= m.ID {
			return fmt.Errorf("%w: members not sorted and unique at %s", ErrBadChange, m.ID)
		}
		if len(m.PeerAddr) > MaxAddressLen || len(m.ClientAddr) > MaxAddressLen {
			return fmt.Errorf("%w: member %s: address longer than %d bytes", ErrBadChange, m.ID, MaxAddressLen)
		}
		if c.IsRemoved(m.ID) {
			return fmt.Errorf("%w: %s is both a member and removed", ErrBadChange, m.ID)
		}
		if m.Voter {
			voters++
		}
	}
	for i := 1; i < len(c.Removed); i++ {
		if c.Removed[i-1] >= c.Removed[i] {
			return fmt.Errorf("%w: removed replicas not sorted and unique", ErrBadChange)
		}
	}
	if voters == 0 {
		return fmt.Errorf("%w: no voter", ErrBadChange)
	}
	return nil
}

// ChangeType says what a ConfChange does.
type ChangeType uint8

// The configuration changes.
const (
	// AddLearner adds a replica that receives the log but does not vote.
	AddLearner ChangeType = iota + 1
	// Promote makes a learner a voter.
	Promote
	// Remove removes a member, voter or learner, for good.
	Remove
)

// String names the kind of change, for logs.
func (t ChangeType) String() string {
	switch t {
	case AddLearner:
		return "add-learner"
	case Promote:
		return "promote"
	case Remove:
		return "remove"
	}
	return fmt.Sprintf("ChangeType(%d)", uint8(t))
}

// ConfChange is one change to the configuration.
type ConfChange struct {
	Type ChangeType
	ID   NodeID
	// PeerAddr and ClientAddr are the new replica's addresses (AddLearner).
	PeerAddr, ClientAddr string
}

// Apply returns the configuration c with cc applied, cc being chosen in
// slot (recorded as the new member's Since).
func (c Configuration) Apply(cc ConfChange, slot uint64) (Configuration, error) {
	out := Configuration{Members: slices.Clone(c.Members), Removed: slices.Clone(c.Removed)}
	_, isMember := c.Member(cc.ID)
	switch cc.Type {
	case AddLearner:
		if cc.ID == None {
			return c, fmt.Errorf("%w: cannot add None", ErrBadChange)
		}
		if isMember {
			return c, fmt.Errorf("%w: %s is already a member", ErrBadChange, cc.ID)
		}
		if c.IsRemoved(cc.ID) {
			return c, fmt.Errorf("%w: %s was removed; a replica's ID is never used again: add it under a new ID", ErrBadChange, cc.ID)
		}
		out.Members = append(out.Members, Member{ID: cc.ID, PeerAddr: cc.PeerAddr, ClientAddr: cc.ClientAddr, Since: slot})
		slices.SortFunc(out.Members, func(a, b Member) int { return cmpID(a.ID, b.ID) })
	case Promote:
		i := slices.IndexFunc(out.Members, func(m Member) bool { return m.ID == cc.ID })
		if i < 0 {
			return c, fmt.Errorf("%w: %s is not a member", ErrBadChange, cc.ID)
		}
		if out.Members[i].Voter {
			return c, fmt.Errorf("%w: %s is already a voter", ErrBadChange, cc.ID)
		}
		out.Members[i].Voter = true
	case Remove:
		i := slices.IndexFunc(out.Members, func(m Member) bool { return m.ID == cc.ID })
		if i < 0 {
			return c, fmt.Errorf("%w: %s is not a member", ErrBadChange, cc.ID)
		}
		out.Members = slices.Delete(out.Members, i, i+1)
		out.Removed = append(out.Removed, cc.ID)
		slices.Sort(out.Removed)
	default:
		return c, fmt.Errorf("%w: unknown change type %d", ErrBadChange, cc.Type)
	}
	if err := out.Validate(); err != nil {
		return c, err
	}
	return out, nil
}

func cmpID(a, b NodeID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// NextConfiguration returns the configuration that value, a
// configuration value chosen in a slot where prev is the newest
// configuration, makes the newest, and true. If value is not prev with
// exactly one change made (AddLearner, Promote or Remove, as
// Configuration.Apply makes it), it changes nothing: NextConfiguration
// returns prev and false, and the slot is a no-op for the configuration.
//
// A configuration value is a whole configuration, computed by the leader
// that proposed it from the newest configuration it knew. One change at a
// time keeps each leader's log to one change in flight, but two leaders
// can each propose one, from the same configuration, in different slots
// of one window (the first cut off before the second took over), and a
// third leadership's phase 1 can recover both: taken whole, the second
// would silently undo the first (a removed ID back as a voter, a learner
// gone without being removed). Every replica decides the same from the
// chosen log, so the configuration of each slot stays a function of the
// values chosen before it, which is all the window rule needs.
func NextConfiguration(prev Configuration, value []byte) (Configuration, bool) {
	next, err := DecodeConfigValue(value)
	if err != nil {
		return prev, false
	}
	var cc ConfChange
	since := uint64(0)
	switch {
	case len(next.Members) == len(prev.Members)+1:
		for _, m := range next.Members {
			if _, ok := prev.Member(m.ID); !ok {
				cc = ConfChange{Type: AddLearner, ID: m.ID, PeerAddr: m.PeerAddr, ClientAddr: m.ClientAddr}
				since = m.Since
				break
			}
		}
	case len(next.Members)+1 == len(prev.Members):
		for _, m := range prev.Members {
			if _, ok := next.Member(m.ID); !ok {
				cc = ConfChange{Type: Remove, ID: m.ID}
				break
			}
		}
	case len(next.Members) == len(prev.Members):
		for _, m := range next.Members {
			if old, ok := prev.Member(m.ID); ok && m.Voter && !old.Voter {
				cc = ConfChange{Type: Promote, ID: m.ID}
				break
			}
		}
	}
	if cc.Type == 0 {
		return prev, false
	}
	want, err := prev.Apply(cc, since)
	if err != nil || !want.Equal(next) {
		return prev, false
	}
	return next, true
}

// ScheduledConfig is a configuration and the first slot it governs.
type ScheduledConfig struct {
	From   uint64
	Config Configuration
}

// ConfigState is the configurations of a replica's slots: each governs
// from its From up to the next one's. It is what a snapshot keeps (the
// state after its slot: the configuration of the next slot, and any chosen
// at or below the snapshot's slot that governs later ones) and what the
// core derives from committed slots.
type ConfigState []ScheduledConfig

// Bootstrap returns the configuration state of a new cluster whose
// replicas are voters, with these addresses (either map may be nil).
func Bootstrap(voters []NodeID, peerAddrs, clientAddrs map[NodeID]string) ConfigState {
	c := Configuration{}
	for _, id := range voters {
		c.Members = append(c.Members, Member{ID: id, Voter: true, PeerAddr: peerAddrs[id], ClientAddr: clientAddrs[id]})
	}
	slices.SortFunc(c.Members, func(a, b Member) int { return cmpID(a.ID, b.ID) })
	return ConfigState{{From: 1, Config: c}}
}

// Validate checks a configuration state read from a disk or a message.
func (cs ConfigState) Validate() error {
	if len(cs) == 0 {
		return errors.New("paxos: empty configuration state")
	}
	if len(cs) > 2*ConfigWindow+2 {
		return fmt.Errorf("paxos: configuration state holds %d configurations", len(cs))
	}
	for i, sc := range cs {
		if i > 0 && sc.From <= cs[i-1].From {
			return fmt.Errorf("paxos: configuration state: configuration %d governs from slot %d, not after %d", i, sc.From, cs[i-1].From)
		}
		if err := sc.Config.Validate(); err != nil {
			return fmt.Errorf("paxos: configuration state: configuration %d: %w", i, err)
		}
	}
	return nil
}

// At returns the configuration that governs slot. cs must not be empty.
func (cs ConfigState) At(slot uint64) Configuration {
	for i := len(cs) - 1; i > 0; i-- {
		if cs[i].From <= slot {
			return cs[i].Config
		}
	}
	return cs[0].Config
}

// Latest returns the newest configuration: the one that governs every slot
// after the last change known. cs must not be empty.
func (cs ConfigState) Latest() Configuration { return cs[len(cs)-1].Config }

// Apply returns cs after value was chosen in slot: if value is a
// configuration that applies to the newest one (see NextConfiguration),
// it governs from slot+ConfigWindow on. It does not change cs (the result
// may share no storage with it to be kept).
func (cs ConfigState) Apply(slot uint64, value []byte) ConfigState {
	if !IsConfigValue(value) {
		return cs
	}
	var c Configuration
	if len(cs) == 0 {
		var err error
		if c, err = DecodeConfigValue(value); err != nil {
			return cs // values are checked when they arrive; cannot happen
		}
	} else {
		var ok bool
		if c, ok = NextConfiguration(cs.Latest(), value); !ok {
			return cs // it changes nothing: see NextConfiguration
		}
	}
	out := slices.Clone(cs)
	from := slot + ConfigWindow
	for len(out) > 0 && out[len(out)-1].From >= from {
		out = out[:len(out)-1] // cannot happen in a log: slots are chosen in order
	}
	return append(out, ScheduledConfig{From: from, Config: c})
}

// Compact returns cs without the configurations that govern no slot after
// slot. The result shares storage with cs.
func (cs ConfigState) Compact(slot uint64) ConfigState {
	i := 0
	for i+1 < len(cs) && cs[i+1].From <= slot+1 {
		i++
	}
	return cs[i:]
}

// The value of a configuration slot (kind 3; see value.go):
//
//	body    = members:uvarint member* removed:uvarint id:uvarint*
//	member  = id:uvarint voter:u8 since:uvarint peer:string client:string
//	string  = len:uvarint bytes

const kindConfig byte = 3

// EncodeConfigValue returns the value that makes c the configuration.
func EncodeConfigValue(c Configuration) []byte {
	b := []byte{kindConfig}
	b = binary.AppendUvarint(b, uint64(len(c.Members)))
	for _, m := range c.Members {
		b = binary.AppendUvarint(b, uint64(m.ID))
		voter := byte(0)
		if m.Voter {
			voter = 1
		}
		b = append(b, voter)
		b = binary.AppendUvarint(b, m.Since)
		b = binary.AppendUvarint(b, uint64(len(m.PeerAddr)))
		b = append(b, m.PeerAddr...)
		b = binary.AppendUvarint(b, uint64(len(m.ClientAddr)))
		b = append(b, m.ClientAddr...)
	}
	b = binary.AppendUvarint(b, uint64(len(c.Removed)))
	for _, id := range c.Removed {
		b = binary.AppendUvarint(b, uint64(id))
	}
	return b
}

// IsConfigValue reports whether v is the value of a configuration slot.
func IsConfigValue(v []byte) bool { return len(v) > 0 && v[0] == kindConfig }

// DecodeConfigValue decodes the configuration of a configuration slot's
// value, checking it; the error wraps ErrBadValue.
func DecodeConfigValue(v []byte) (Configuration, error) {
	if !IsConfigValue(v) {
		return Configuration{}, fmt.Errorf("%w: not a configuration", ErrBadValue)
	}
	if len(v) > maxConfigBytes {
		return Configuration{}, fmt.Errorf("%w: configuration of %d bytes", ErrBadValue, len(v))
	}
	d := decoder{b: v[1:]}
	var c Configuration
	n := d.uvarint()
	if n > MaxMembers {
		return Configuration{}, fmt.Errorf("%w: configuration with %d members", ErrBadValue, n)
	}
	for range n {
		var m Member
		m.ID = NodeID(d.uvarint())
		switch d.byte() {
		case 0:
		case 1:
			m.Voter = true
		default:
			d.fail("voter flag")
		}
		m.Since = d.uvarint()
		m.PeerAddr = d.string()
		m.ClientAddr = d.string()
		c.Members = append(c.Members, m)
	}
	n = d.uvarint()
	if n > MaxRemoved {
		return Configuration{}, fmt.Errorf("%w: configuration with %d removed replicas", ErrBadValue, n)
	}
	for range n {
		c.Removed = append(c.Removed, NodeID(d.uvarint()))
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return Configuration{}, fmt.Errorf("%w: configuration: %v", ErrBadValue, d.err)
	}
	if err := c.Validate(); err != nil {
		return Configuration{}, fmt.Errorf("%w: %v", ErrBadValue, err)
	}
	return c, nil
}

// decoder reads the fields of a configuration value; the first failure
// sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("bad %s", what)
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("number")
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail("byte")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > MaxAddressLen || n > uint64(len(d.b)) {
		d.fail("address")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
