package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/paxos-go/paxos/internal/chatmodel"
)

// The oracles: pure functions of what the run observed, each returning
// what is wrong (nothing when all is well).

// checkReads checks the logs the Gets returned, in harness order: each
// extends the one before (reads are linearizable and each starts after the
// last ended), and none holds a message twice (messages are unique).
func checkReads(reads [][]string) []string {
	var fails []string
	for i, log := range reads {
		if d := duplicate(log); d != "" {
			fails = append(fails, fmt.Sprintf("read %d holds %q twice: %q", i, d, log))
		}
		if i > 0 && !isPrefix(reads[i-1], log) {
			fails = append(fails, fmt.Sprintf("read %d returned %q, which does not extend the read before it, %q", i, log, reads[i-1]))
		}
	}
	return fails
}

// checkFinal checks the log the replicas converged on: every acknowledged
// put is in it exactly once, and no message twice.
func checkFinal(final, acked []string) []string {
	var fails []string
	count := map[string]int{}
	for _, m := range final {
		count[m]++
	}
	for _, m := range acked {
		if count[m] != 1 {
			fails = append(fails, fmt.Sprintf("the acknowledged put %q is in the final log %d times: %q", m, count[m], final))
		}
	}
	if d := duplicate(final); d != "" {
		fails = append(fails, fmt.Sprintf("the final log holds %q twice: %q", d, final))
	}
	return fails
}

// checkLinearizable checks the client history with porcupine against the
// chat room's specification guided by the final log (chatmodel.Guided).
// Puts never acknowledged (Return beyond end) are pending to the end. On a
// violation it writes porcupine's picture into dir and returns its path.
func checkLinearizable(history []porcupine.Operation, final []string, end int64, dir string) (string, error) {
	history = slices.Clone(history)
	for i := range history {
		if history[i].Return > end {
			history[i].Return = end + 1
		}
	}
	model := chatmodel.Guided(final)
	res, info := porcupine.CheckOperationsVerbose(model, history, 30*time.Second)
	switch res {
	case porcupine.Ok:
		return "", nil
	case porcupine.Unknown:
		return "", fmt.Errorf("the linearizability check of %d operations timed out", len(history))
	}
	path := filepath.Join(dir, "linearizability.html")
	f, err := os.Create(path)
	if err != nil {
		return "", fmt.Errorf("the client history is not linearizable (and its picture could not be written: %v)", err)
	}
	porcupine.Visualize(model, info, f)
	f.Close()
	return path, fmt.Errorf("the client history is not linearizable; porcupine's picture: %s", path)
}

func duplicate(log []string) string {
	seen := map[string]bool{}
	for _, m := range log {
		if seen[m] {
			return m
		}
		seen[m] = true
	}
	return ""
}

func isPrefix(a, b []string) bool {
	return len(a) <= len(b) && slices.Equal(a, b[:len(a)])
}
