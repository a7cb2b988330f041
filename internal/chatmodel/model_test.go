package chatmodel

import (
	"testing"

	"github.com/anishathalye/porcupine"
)

// TestStateHoldsTheJoinedLog checks that the hashed state recognises the
// joined log it stands for, and not its neighbours.
func TestStateHoldsTheJoinedLog(t *testing.T) {
	var msgs []string
	st := Empty
	for _, m := range []string{"a", "bc", "", "d,e", "f"} {
		if !st.Holds(Join(msgs)) {
			t.Fatalf("the state of %q does not hold it", msgs)
		}
		msgs = append(msgs, m)
		st = st.Put(m)
	}
	if !st.Holds(Join(msgs)) || st.String() != "[a, bc, , d,e, f]" {
		t.Fatalf("state %s does not hold %q", st, msgs)
	}
	for _, other := range []string{"", "a,bc,,d,e", "a,bc,,d,e,g", "a,bc,,d,e,f,"} {
		if st.Holds(other) {
			t.Errorf("the state of %q holds %q", msgs, other)
		}
	}
}

// TestModelVerdicts checks the model, guided and not, on a history that is
// linearizable and on one that is not (a get that misses a put which
// completed before it started).
func TestModelVerdicts(t *testing.T) {
	put := func(c int, text string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: Input{Put: true, Text: text}, Call: call, Return: ret}
	}
	get := func(c int, log string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Output: Output{Log: log}, Call: call, Return: ret}
	}
	good := []porcupine.Operation{put(0, "x", 0, 10), put(1, "y", 0, 10), get(2, "y,x", 11, 12)}
	bad := []porcupine.Operation{put(0, "x", 0, 10), put(1, "y", 11, 20), get(2, "y", 21, 22)}
	for _, m := range []struct {
		name  string
		model porcupine.Model
	}{{"model", Model}, {"guided", Guided([]string{"y", "x"})}} {
		if porcupine.CheckOperations(m.model, good) != true {
			t.Errorf("%s: a linearizable history was refused", m.name)
		}
		if porcupine.CheckOperations(m.model, bad) != false {
			t.Errorf("%s: a stale get was accepted", m.name)
		}
	}
	if porcupine.CheckOperations(Guided([]string{"x", "y"}), good) {
		t.Error("guided by the other order, a get of y,x was accepted")
	}
}
