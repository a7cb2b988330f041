package sim

import (
	"strings"
	"testing"
)

func TestDebugMerge(t *testing.T) {
	shown := 0
	for seed := uint64(3); seed < 600 && shown < 1; seed += 6 {
		opts := optionsFor(seed)
		opts.Trace, opts.TraceLines = true, 1<<30
		res := Run(opts)
		for i, l := range res.Trace {
			if strings.Contains(l, "reconnect") {
				for j := i + 1; j < i+30 && j < len(res.Trace); j++ {
					if strings.Contains(res.Trace[j], "crash") {
						shown++
						t.Logf("seed %d err=%v", seed, res.Err)
						for k := i - 30; k < j+60 && k < len(res.Trace); k++ {
							if strings.Contains(res.Trace[k], "Heartbeat") && !strings.Contains(res.Trace[k], "persist") {
								continue
							}
							t.Log(res.Trace[k][:min(len(res.Trace[k]), 300)])
						}
						break
					}
				}
				if shown > 0 {
					return
				}
			}
		}
	}
}
