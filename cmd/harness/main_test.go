package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBadScenarioFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`[{"type":"Start","id":0,"port":1,"count":1},{"type":"Put","id":0}]`), 0o644)
	for _, tc := range []struct{ file, want string }{
		{bad, `op 1: Put: missing field "message"`},
		{filepath.Join(dir, "none-*.json"), "no scenario matches"},
	} {
		var out, errOut bytes.Buffer
		c := cli{File: tc.file, Server: "/bin/false"}
		if code := c.run(context.Background(), &out, &errOut); code != 1 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want 1 and %q", tc.file, code, errOut.String(), tc.want)
		}
	}
}
