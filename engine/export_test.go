package engine

// What the external tests (package engine_test) share with the internal
// ones: the test state machine and the polling helper.

// LogMachine is the test state machine: an append-only log of payloads.
type LogMachine = logMachine

// Entries returns the payloads applied, in order.
func (m *logMachine) Entries() []string { return m.entries() }

// WaitFor polls cond until it holds or the deadline passes.
var WaitFor = waitFor
