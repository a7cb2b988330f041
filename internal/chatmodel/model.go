// Package chatmodel is the chat room's sequential specification as a
// porcupine model, shared by the simulator and the harness, which check
// their clients' histories for linearizability against it: puts append a
// message to a log, gets return the whole log.
package chatmodel

import (
	"strings"

	"github.com/anishathalye/porcupine"
)

// Input is an operation: a put of Text, or a get.
type Input struct {
	Put  bool
	Text string
}

// Output is what an operation returned: for a get, the log, its messages
// joined by commas.
type Output struct {
	Log string
}

// Join renders a log the way Output holds it.
func Join(messages []string) string { return strings.Join(messages, ",") }

// State is the model's state: the joined log, held as its length and a
// hash instead of the string. Porcupine steps and compares states many
// times over for every operation; with the string itself, each put
// copied the whole log and each comparison read it, which made histories
// of a few thousand operations time out. A get's output is hashed the
// same way, and only when its length matches, so most wrong guesses cost
// nothing. FNV-1a is a streaming hash: appending ",text" continues it
// from the log's hash, as if the joined string had been hashed whole.
type State struct {
	// Messages is how many messages the log holds and Bytes the length of
	// the joined string.
	Messages, Bytes int
	// Hash is the FNV-1a hash of the joined string.
	Hash uint64
	// tail is the log itself, newest message first, shared between the
	// states porcupine explores: a put costs one small allocation. It is
	// only read to describe a state, never to compare one.
	tail *message
}

type message struct {
	text string
	prev *message
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvAppend(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// Put returns the state after text is appended.
func (st State) Put(text string) State {
	if st.Messages > 0 {
		st.Hash = fnvAppend(st.Hash, ",")
		st.Bytes++
	}
	st.Hash = fnvAppend(st.Hash, text)
	st.Bytes += len(text)
	st.Messages++
	st.tail = &message{text: text, prev: st.tail}
	return st
}

// Holds reports whether log, a joined log, is the one st stands for (up
// to a collision of 64-bit hashes).
func (st State) Holds(log string) bool {
	return len(log) == st.Bytes && fnvAppend(fnvOffset, log) == st.Hash
}

// Log returns the messages of the log, oldest first.
func (st State) Log() []string {
	log := make([]string, st.Messages)
	for i, m := len(log)-1, st.tail; m != nil; i, m = i-1, m.prev {
		log[i] = m.text
	}
	return log
}

// Equal reports whether two states stand for the same log (up to a
// collision of 64-bit hashes).
func (st State) Equal(o State) bool {
	return st.Messages == o.Messages && st.Bytes == o.Bytes && st.Hash == o.Hash
}

func (st State) String() string { return "[" + strings.Join(st.Log(), ", ") + "]" }

// Empty is the state of the empty log.
var Empty = State{Hash: fnvOffset}

// Model is the specification.
var Model = porcupine.Model{
	Init: func() any { return Empty },
	Step: func(state, input, output any) (bool, any) {
		st := state.(State)
		in, _ := input.(Input)
		if in.Put {
			return true, st.Put(in.Text)
		}
		out, _ := output.(Output)
		return st.Holds(out.Log), st
	},
	Equal: func(a, b any) bool { return a.(State).Equal(b.(State)) },
	Hash:  func(state any) uint64 { return state.(State).Hash },
	DescribeOperation: func(input, output any) string {
		in, _ := input.(Input)
		out, _ := output.(Output)
		if in.Put {
			return "put " + in.Text
		}
		return "get -> [" + out.Log + "]"
	},
	DescribeState: func(state any) string { return state.(State).String() },
}

// Guided returns the specification constrained by the log all replicas
// ended with: puts must take effect in that log's order, and a put missing
// from it must take effect after all of it (where nothing observes it).
// With unique messages the final log fixes the order of the puts, so this
// checks the same property as Model, plus the final state, but lets
// porcupine follow one order instead of trying every interleaving of
// concurrent puts.
func Guided(final []string) porcupine.Model {
	pos := make(map[string]int, len(final))
	for i, m := range final {
		pos[m] = i
	}
	m := Model
	m.Step = func(state, input, output any) (bool, any) {
		st := state.(State)
		in, _ := input.(Input)
		if !in.Put {
			out, _ := output.(Output)
			return st.Holds(out.Log), st
		}
		if i, ok := pos[in.Text]; ok {
			if i != st.Messages {
				return false, st
			}
		} else if st.Messages < len(final) {
			return false, st
		}
		return true, st.Put(in.Text)
	}
	return m
}
