package harness

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// server is a running chatroom-server process.
type server struct {
	id     int
	cmd    *exec.Cmd
	log    *os.File
	paused bool
	exited chan struct{}
}

func startServer(bin string, args []string, logPath string) (*server, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "--- %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	s := &server{cmd: cmd, log: log, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		log.Close()
		close(s.exited)
	}()
	return s, nil
}

// kill kills the process with SIGKILL, as a crash would, and reaps it.
func (s *server) kill() {
	if s.paused {
		s.cmd.Process.Signal(syscall.SIGCONT)
	}
	s.cmd.Process.Kill()
	<-s.exited
}

func (s *server) pause() error {
	s.paused = true
	return s.cmd.Process.Signal(syscall.SIGSTOP)
}

func (s *server) resume() error {
	s.paused = false
	return s.cmd.Process.Signal(syscall.SIGCONT)
}

// running reports whether the process has not exited.
func (s *server) running() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// stop asks the process to stop (SIGTERM) and waits for it, up to
// timeout; then it kills it.
func (s *server) stop(timeout time.Duration) {
	if s.paused {
		s.cmd.Process.Signal(syscall.SIGCONT)
		s.paused = false
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(timeout):
		s.kill()
	}
}
