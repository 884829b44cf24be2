package main

import (
	"testing"

	"github.com/spf13/pflag"

	"github.com/restore-run/restore-run/transfer"
)

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "512": 512, "64KiB": 64 << 10, "8MiB": 8 << 20, "8m": 8 << 20, "100MB": 100 << 20, "1.5GiB": 3 << 29, "2 G": 2 << 30, "10b": 10,
	} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "8 parsecs", "1e3"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q) succeeded", in)
		}
	}
}

func TestTransferFlags(t *testing.T) {
	parse := func(args ...string) (*transferFlags, error) {
		fl := pflag.NewFlagSet("x", pflag.ContinueOnError)
		f := addTransferFlags(fl)
		return f, fl.Parse(args)
	}
	f, err := parse("--concurrency", "16", "--part-size", "16MiB", "--bandwidth-limit", "100MB/s", "--files-at-once", "4", "--progress", "log", "--no-resume")
	if err != nil {
		t.Fatal(err)
	}
	o, err := f.options()
	if err != nil {
		t.Fatal(err)
	}
	if o.Concurrency != 16 || o.PartSize != 16<<20 || o.BandwidthLimit != 100<<20 || o.FilesAtOnce != 4 || o.Progress != transfer.ProgressLog || !o.NoResume {
		t.Errorf("options %+v", o)
	}
	f, _ = parse()
	if o, err := f.options(); err != nil || o.Concurrency != transfer.DefaultConcurrency || o.PartSize != transfer.DefaultPartSize || o.BandwidthLimit != 0 {
		t.Errorf("defaults: %+v, %v", o, err)
	}
	for _, args := range [][]string{
		{"--concurrency", "0"}, {"--part-size", "1KiB"}, {"--part-size", "2GiB"}, {"--bandwidth-limit", "fast"},
		{"--bandwidth-limit", "10"}, {"--progress", "fancy"}, {"--files-at-once", "0"},
	} {
		f, err := parse(args...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.options(); err == nil {
			t.Errorf("%v accepted", args)
		} else if _, ok := err.(*flagError); !ok {
			t.Errorf("%v: %T is not a usage error", args, err)
		}
	}
}
