// Package wire is what every paxos-go connection speaks, peer or client:
// frames (a big-endian u32 length, then the payload; frame.go), the
// handshake that opens a connection (a Hello from the dialer, a Welcome
// back; conn.go), and what a listener needs to keep accepting under
// abuse (Accept, Pending, Victim, RateLog).
//
// It is internal, shared by the transport (net), the replica's client port
// (engine) and the Go client (client), so that net's exported API is only
// what an embedder needs: the Transport and its Options.
package wire
