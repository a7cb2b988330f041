package sim

import (
	"strings"

	"github.com/anishathalye/porcupine"
)

// chatModel is the chat room as a porcupine model, for checking that the
// clients' history is linearizable: puts append to a log, gets return it.
type chatInput struct {
	put  bool
	text string
}

type chatOutput struct {
	log string
}

// ChatModel is the sequential specification the clients' histories are
// checked against.
var ChatModel = porcupine.Model{
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		log := state.(string)
		in, out := input.(chatInput), output.(chatOutput)
		if in.put {
			if log == "" {
				return true, in.text
			}
			return true, log + "," + in.text
		}
		return out.log == log, log
	},
	Equal: func(a, b any) bool { return a.(string) == b.(string) },
	DescribeOperation: func(input, output any) string {
		in, out := input.(chatInput), output.(chatOutput)
		if in.put {
			return "put " + in.text
		}
		return "get -> [" + out.log + "]"
	},
	DescribeState: func(state any) string {
		return "[" + strings.ReplaceAll(state.(string), ",", ", ") + "]"
	},
}
