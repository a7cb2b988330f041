// Package tests holds the end-to-end fault scenarios of paxos-go: the
// eight scenarios of the original project (scenarios/*.json, accepted in
// their original format) and ours, with partitions, one-way cuts, paused,
// isolated and crashed leaders, loss and recovery of a majority, restarts
// of every server, and many concurrent clients; and membership changes
// under load: a crashed server replaced by a new one, a cluster grown from
// three to five and shrunk back, every original server replaced one by
// one, leadership handed around with no put failing, and the leader
// removed. go test ./tests builds chatroom-server and runs each scenario
// against real processes through the harness, which judges it.
package tests
