// Package tests holds the end-to-end fault scenarios of paxos-go: the
// eight scenarios of the original project (scenarios/*.json, accepted in
// their original format) and ours, with partitions, one-way cuts, paused,
// isolated and crashed leaders, loss and recovery of a majority, restarts
// of every server, and many concurrent clients. go test ./tests builds
// chatroom-server and runs each scenario against real processes through
// the harness, which judges it.
package tests
