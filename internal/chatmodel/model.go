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
		in, out := input.(Input), output.(Output)
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
		in, out := input.(Input), output.(Output)
		if in.Put {
			return "put " + in.Text
		}
		return "get -> [" + out.Log + "]"
	},
	DescribeState: func(state any) string {
		return "[" + strings.ReplaceAll(state.(string), ",", ", ") + "]"
	},
}
