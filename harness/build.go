package harness

import (
	"fmt"
	"os/exec"
	"path/filepath"
)

// BuildServer builds cmd/chatroom-server into dir and returns the path of
// the binary. It must run inside this module.
func BuildServer(dir string) (string, error) {
	bin := filepath.Join(dir, "chatroom-server")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/paxos-go/paxos/cmd/chatroom-server").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("harness: building chatroom-server: %v\n%s", err, out)
	}
	return bin, nil
}
