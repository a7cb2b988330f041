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

// Model is the specification.
var Model = porcupine.Model{
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		log := state.(string)
		in, _ := input.(Input)
		out, _ := output.(Output)
		if in.Put {
			if log == "" {
				return true, in.Text
			}
			return true, log + "," + in.Text
		}
		return out.Log == log, log
	},
	Equal: func(a, b any) bool { return a.(string) == b.(string) },
	DescribeOperation: func(input, output any) string {
		in, _ := input.(Input)
		out, _ := output.(Output)
		if in.Put {
			return "put " + in.Text
		}
		return "get -> [" + out.Log + "]"
	},
	DescribeState: func(state any) string {
		return "[" + strings.ReplaceAll(state.(string), ",", ", ") + "]"
	},
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
	m.Init = func() any { return guided{} }
	m.Step = func(state, input, output any) (bool, any) {
		st := state.(guided)
		in, _ := input.(Input)
		out, _ := output.(Output)
		if !in.Put {
			return out.Log == st.log, st
		}
		if i, ok := pos[in.Text]; ok {
			if i != st.n {
				return false, st
			}
		} else if st.n < len(final) {
			return false, st
		}
		if st.log == "" {
			st.log = in.Text
		} else {
			st.log += "," + in.Text
		}
		st.n++
		return true, st
	}
	m.Equal = func(a, b any) bool { return a.(guided) == b.(guided) }
	m.DescribeState = func(state any) string {
		return "[" + strings.ReplaceAll(state.(guided).log, ",", ", ") + "]"
	}
	return m
}

type guided struct {
	log string
	n   int
}
