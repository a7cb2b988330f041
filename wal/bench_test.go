package wal

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingFS counts the fdatasync calls made through it.
type countingFS struct {
	FS
	syncs *atomic.Int64
}

func (c countingFS) Create(name string) (File, error) {
	f, err := c.FS.Create(name)
	return countingFile{f, c.syncs}, err
}

func (c countingFS) Open(name string) (File, error) {
	f, err := c.FS.Open(name)
	return countingFile{f, c.syncs}, err
}

type countingFile struct {
	File
	syncs *atomic.Int64
}

func (c countingFile) Sync() error {
	c.syncs.Add(1)
	return c.File.Sync()
}

// BenchmarkFsyncBaseline is the floor the log is measured against: append
// 72 bytes (a 64-byte entry and its header) to a file and fdatasync, in a
// loop, on the same file system as the other benchmarks.
func BenchmarkFsyncBaseline(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "baseline"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	rec := make([]byte, 72)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := f.Write(rec); err != nil {
			b.Fatal(err)
		}
		if err := datasync(f); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/secs, "fsyncs/s")
	reportLatency(b, lat)
}

// BenchmarkSave measures durable 64-byte entries per second with 1, 16 and
// 256 goroutines saving one entry each at a time, every Save synced: group
// commit is what lets more writers share each fdatasync.
func BenchmarkSave(b *testing.B) {
	for _, writers := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			var syncs atomic.Int64
			l, _, err := Open("", Options{FS: countingFS{OSFS(b.TempDir()), &syncs}})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			value := make([]byte, 64)
			var slotMu sync.Mutex
			next := uint64(1)
			lats := make([][]time.Duration, writers)
			var wg sync.WaitGroup
			per := b.N / writers
			if per == 0 {
				per = 1
			}
			syncs.Store(0)
			b.ResetTimer()
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					lat := make([]time.Duration, 0, per)
					for i := 0; i < per; i++ {
						start := time.Now()
						slotMu.Lock()
						t, err := l.Enqueue(Batch{Entries: []Entry{{Slot: next, Ballot: Ballot{Round: 1, Node: 1}, Value: value}}}, true)
						next++
						slotMu.Unlock()
						if err == nil {
							err = l.Wait(t)
						}
						if err != nil {
							b.Error(err)
							return
						}
						lat = append(lat, time.Since(start))
					}
					lats[w] = lat
				}()
			}
			wg.Wait()
			b.StopTimer()
			records := float64(per * writers)
			secs := b.Elapsed().Seconds()
			b.ReportMetric(records/secs, "records/s")
			b.ReportMetric(records*float64(recordSize(len(value)+24))/secs/1e6, "MB/s")
			b.ReportMetric(float64(syncs.Load())/secs, "fsyncs/s")
			b.ReportMetric(records/float64(max(syncs.Load(), 1)), "records/fsync")
			var all []time.Duration
			for _, l := range lats {
				all = append(all, l...)
			}
			reportLatency(b, all)
		})
	}
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-us")
}
