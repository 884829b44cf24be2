package transfer

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// barEvery is how often the progress bar is redrawn.
const barEvery = 200 * time.Millisecond

// progressStart starts showing progress, if asked, for the duration of a call;
// concurrent calls share one display.
func (d *Downloader) progressStart() {
	d.c.started()
	d.progMu.Lock()
	defer d.progMu.Unlock()
	d.progRefs++
	if d.progRefs > 1 || d.o.Progress == ProgressNone || (d.o.Progress == ProgressBar && d.o.ProgressOut == nil) {
		return
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go d.progressLoop(stop, done)
	d.progStop = func() { close(stop); <-done }
}

func (d *Downloader) progressStop() {
	d.progMu.Lock()
	defer d.progMu.Unlock()
	d.progRefs--
	if d.progRefs == 0 && d.progStop != nil {
		d.progStop()
		d.progStop = nil
	}
}

// meter turns successive snapshots into a smoothed rate.
type meter struct {
	at      time.Time
	fetched int64
	rate    float64 // bytes per second
}

func (m *meter) update(s Stats) {
	now := time.Now()
	if !m.at.IsZero() {
		dt := now.Sub(m.at).Seconds()
		if dt > 0 {
			inst := float64(s.BytesFetched-m.fetched) / dt
			if m.rate == 0 {
				m.rate = inst
			} else {
				m.rate = 0.7*m.rate + 0.3*inst
			}
		}
	}
	m.at, m.fetched = now, s.BytesFetched
}

func (m *meter) eta(s Stats) string {
	left := s.Bytes - s.BytesDone
	if left <= 0 {
		return "0s"
	}
	if m.rate < 1 {
		return "-"
	}
	return time.Duration(float64(left) / m.rate * float64(time.Second)).Round(time.Second).String()
}

func (d *Downloader) progressLoop(stop, done chan struct{}) {
	defer close(done)
	every := d.o.LogEvery
	if d.o.Progress == ProgressBar {
		every = barEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var m meter
	m.update(d.Stats())
	for {
		select {
		case <-stop:
			if d.o.Progress == ProgressBar {
				s := d.Stats()
				m.update(s)
				io.WriteString(d.o.ProgressOut, "\r"+barLine(s, m, width(d.o.ProgressOut))+"\x1b[K\n")
			}
			return
		case <-t.C:
			s := d.Stats()
			m.update(s)
			if d.o.Progress == ProgressBar {
				io.WriteString(d.o.ProgressOut, "\r"+barLine(s, m, width(d.o.ProgressOut))+"\x1b[K")
				continue
			}
			var active []string
			for _, f := range s.Active {
				active = append(active, fmt.Sprintf("%s %s", f.Name, percent(f.Done, f.Size)))
			}
			d.o.Log.Info().Str("done", sizeText(s.BytesDone)+" of "+sizeText(s.Bytes)).Str("percent", percent(s.BytesDone, s.Bytes)).
				Str("rate", sizeText(int64(m.rate))+"/s").Str("eta", m.eta(s)).Int64("files_done", s.FilesDone).Int64("files", s.Files).
				Int64("retries", s.Retries).Strs("active", active).Msg("download progress")
		}
	}
}

func percent(done, size int64) string {
	if size <= 0 {
		return "100%"
	}
	return fmt.Sprintf("%d%%", done*100/size)
}

// width is the terminal width of w, or 100.
func width(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if c, _, err := term.GetSize(int(f.Fd())); err == nil && c > 20 {
			return c - 1
		}
	}
	return 100
}

// barLine renders one line: a bar, bytes, rate, ETA, files, retries and the files
// in progress, cut to the width.
func barLine(s Stats, m meter, w int) string {
	const barW = 24
	fill := 0
	if s.Bytes > 0 {
		fill = int(s.BytesDone * barW / s.Bytes)
	} else if s.Files > 0 && s.FilesDone == s.Files {
		fill = barW
	}
	fill = min(max(fill, 0), barW)
	bar := strings.Repeat("=", fill)
	if fill < barW {
		bar += ">" + strings.Repeat(" ", barW-fill-1)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %4s %s/%s %s/s ETA %s", bar, percent(s.BytesDone, s.Bytes), sizeText(s.BytesDone), sizeText(s.Bytes),
		sizeText(int64(m.rate)), m.eta(s))
	if s.Files > 1 {
		fmt.Fprintf(&b, " files %d/%d", s.FilesDone, s.Files)
	}
	if s.Retries > 0 {
		fmt.Fprintf(&b, " retries %d", s.Retries)
	}
	for i, f := range s.Active {
		if i == 0 {
			b.WriteString(" |")
		}
		fmt.Fprintf(&b, " %s %s", f.Name, percent(f.Done, f.Size))
	}
	line := b.String()
	if r := []rune(line); len(r) > w {
		line = string(r[:w-1]) + "…"
	}
	return line
}
