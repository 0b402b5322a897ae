package watchdog

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"syscall"
	"testing"
	"time"
)

const helperEnv = "MOAT_WATCHDOG_TEST_PARENT"

// startSleep starts `sleep 300` in a process group of its own, as envtest
// starts etcd and kube-apiserver.
func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	end := bytes.LastIndexByte(stat, ')')
	fields := bytes.Fields(stat[end+1:])
	return len(fields) > 0 && string(fields[0]) != "Z"
}

func TestChildren(t *testing.T) {
	sleep := startSleep(t)
	defer func() { _ = sleep.Process.Kill(); _ = sleep.Wait() }()
	other := exec.Command("cat")
	otherIn, err := other.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = otherIn.Close(); _ = other.Wait() }()

	path, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Children(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{sleep.Process.Pid}; !reflect.DeepEqual(got, want) {
		t.Errorf("Children(%s) = %v, want %v (not cat's %d)", path, got, want, other.Process.Pid)
	}
	if _, err := Children("/no/such/binary"); err == nil {
		t.Error("Children of a missing binary: want an error")
	}
}

func TestStartRefusesNothingAndInit(t *testing.T) {
	if _, err := Start(nil); err == nil || err.Error() != "watchdog: no processes to guard" {
		t.Errorf("Start(nil): got %v", err)
	}
	if _, err := Start([]int{1}); err == nil || err.Error() != "watchdog: refusing to guard pid 1" {
		t.Errorf("Start([1]): got %v", err)
	}
}

// TestStopLeavesProcessesAlone: a normal shutdown stops the watchdog, which
// then signals nothing.
func TestStopLeavesProcessesAlone(t *testing.T) {
	sleep := startSleep(t)
	defer func() { _ = sleep.Process.Kill(); _ = sleep.Wait() }()
	w, err := Start([]int{sleep.Process.Pid})
	if err != nil {
		t.Fatal(err)
	}
	w.Stop()
	if !alive(sleep.Process.Pid) {
		t.Fatal("Stop killed the guarded process")
	}
}

// TestKilledParent: a parent killed with SIGKILL leaves nothing behind.
func TestKilledParent(t *testing.T) {
	parent := exec.Command(os.Args[0])
	parent.Env = append(os.Environ(), helperEnv+"=1")
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the guarded pid: %v", err)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace([]byte(line))))
	if err != nil {
		t.Fatalf("parent printed %q, want a pid", line)
	}
	if !alive(pid) {
		t.Fatalf("guarded process %d is not running", pid)
	}
	if err := parent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = parent.Wait()

	deadline := time.Now().Add(30 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d outlived its killed parent", pid)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMain doubles as the parent process of TestKilledParent: with
// helperEnv set it starts a guarded child, prints its pid and waits to be
// killed.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "1" {
		os.Exit(m.Run())
	}
	sleep := exec.Command("sleep", "300")
	sleep.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := sleep.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if _, err := Start([]int{sleep.Process.Pid}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(sleep.Process.Pid)
	time.Sleep(5 * time.Minute)
	os.Exit(1)
}
