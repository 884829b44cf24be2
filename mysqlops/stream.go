package mysqlops

import (
	"compress/gzip"
	"io"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/restore-run/restore-run/drivers"
)

// CompressionOf names the compression of a snapshot file: the manifest's
// compression field when set, else its name's extension (.zst, .gz).
func CompressionOf(name, field string) string {
	switch field {
	case "zstd", "gzip", "lz4":
		return field
	}
	switch {
	case strings.HasSuffix(name, ".zst"), strings.HasSuffix(name, ".zstd"):
		return "zstd"
	case strings.HasSuffix(name, ".gz"):
		return "gzip"
	}
	return "none"
}

// Decompress wraps r with a decompressor for compression ("zstd", "gzip",
// "none"). Closing the result closes r. A damaged stream fails its Read with a
// corruption error.
func Decompress(r io.ReadCloser, compression string) (io.ReadCloser, error) {
	switch compression {
	case "", "none":
		return r, nil
	case "zstd":
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(2), zstd.WithDecoderLowmem(false))
		if err != nil {
			r.Close()
			return nil, drivers.WithClass(drivers.Corruption, "zstd", err)
		}
		return &decompressed{r: d, close: func() error { d.Close(); return r.Close() }}, nil
	case "gzip":
		g, err := gzip.NewReader(r)
		if err != nil {
			r.Close()
			return nil, drivers.WithClass(drivers.Corruption, "gzip", err)
		}
		return &decompressed{r: g, close: func() error { g.Close(); return r.Close() }}, nil
	}
	r.Close()
	return nil, drivers.Errorf(drivers.Permanent, "cannot decompress %q (zstd, gzip or none)", compression)
}

type decompressed struct {
	r     io.Reader
	close func() error
}

func (d *decompressed) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF {
		var de *drivers.Error
		if !asDriverErr(err, &de) {
			// The decoder's own complaint: the bytes are not what they claim.
			err = drivers.WithClass(drivers.Corruption, "decompress", err)
		}
	}
	return n, err
}

func (d *decompressed) Close() error { return d.close() }
