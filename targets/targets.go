// Package targets turns a --target reference into a drivers.Target: a scratch URL
// (scratch://ENGINE?options) for throwaway servers the run creates, or the path of a
// YAML target file describing existing servers. Each engine registers how its
// targets look (a Kind); secrets in target files are given by reference (env var or
// file), resolved here and kept out of the target's Spec.
package targets

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"sigs.k8s.io/yaml"

	"github.com/restore-run/restore-run/drivers"
)

// Kind describes the targets of one engine.
type Kind struct {
	// Engine is the engine name, e.g. "etcd".
	Engine string
	// Scratch builds the spec of a throwaway target under dir from the URL's query
	// options; it allocates names, ports and directories but starts nothing.
	Scratch func(opts url.Values, dir string) (*drivers.Target, error)
	// Check validates the spec of a target file and returns the directories the
	// restore may write (data dirs and their staging siblings).
	Check func(spec map[string]any) (dirs []string, err error)
	// ScratchDoc documents the scratch options, e.g. "members=N (1-7, default 1)".
	ScratchDoc string
}

var (
	mu    sync.Mutex
	kinds = map[string]Kind{}
)

// Register adds an engine's target kind.
func Register(k Kind) {
	mu.Lock()
	defer mu.Unlock()
	kinds[k.Engine] = k
}

// Engines lists the engines with a registered kind.
func Engines() []string {
	mu.Lock()
	defer mu.Unlock()
	var out []string
	for e := range kinds {
		out = append(out, e)
	}
	sort.Strings(out)
	return out
}

// Known reports whether engine has a registered target kind.
func Known(engine string) bool {
	_, ok := kind(engine)
	return ok
}

func kind(engine string) (Kind, bool) {
	mu.Lock()
	defer mu.Unlock()
	k, ok := kinds[engine]
	return k, ok
}

// Parse resolves ref into a target. scratchDir is where a scratch target keeps its
// data (inside the run's work dir). Secrets referenced by a target file are resolved
// and recorded on the target with SetSecret; Spec holds only their references.
func Parse(ref, scratchDir string) (*drivers.Target, error) {
	if ref == "" {
		return nil, drivers.Errorf(drivers.Permanent, "no target given (use --target scratch://ENGINE or --target FILE.yaml)")
	}
	if strings.HasPrefix(ref, "scratch://") {
		return parseScratch(ref, scratchDir)
	}
	if strings.Contains(ref, "://") {
		return nil, drivers.Errorf(drivers.Permanent, "target %q: unknown scheme (use scratch://ENGINE?options or the path of a YAML target file)", ref)
	}
	return ParseFile(ref)
}

func parseScratch(ref, dir string) (*drivers.Target, error) {
	u, err := url.Parse(ref)
	if err != nil {
		return nil, drivers.Errorf(drivers.Permanent, "target %q is not a valid URL: %v", ref, err)
	}
	engine := u.Host
	k, ok := kind(engine)
	if !ok || k.Scratch == nil {
		return nil, drivers.Errorf(drivers.Permanent, "target %q: no scratch targets for engine %q (known: %s)", ref, engine, strings.Join(Engines(), ", "))
	}
	if u.Path != "" && u.Path != "/" {
		return nil, drivers.Errorf(drivers.Permanent, "target %q: a scratch URL has no path; options go in the query (%s)", ref, k.ScratchDoc)
	}
	t, err := k.Scratch(u.Query(), dir)
	if err != nil {
		return nil, drivers.WithHint(drivers.WithClass(drivers.Permanent, "target "+ref, err), "scratch://"+engine+" options: "+k.ScratchDoc)
	}
	t.Ref, t.Scratch, t.Engine = ref, true, engine
	return t, nil
}

// EngineOf returns the engine a target reference names (the host of a scratch URL,
// the `engine:` of a target file) without checking the rest, so a caller can refuse
// a target of the wrong engine before complaining about its details.
func EngineOf(ref string) (string, error) {
	if strings.HasPrefix(ref, "scratch://") {
		u, err := url.Parse(ref)
		if err != nil {
			return "", drivers.Errorf(drivers.Permanent, "target %q is not a valid URL: %v", ref, err)
		}
		return u.Host, nil
	}
	if ref == "" || strings.Contains(ref, "://") {
		return "", nil
	}
	data, err := os.ReadFile(ref)
	if err != nil {
		return "", drivers.WithClass(drivers.Permanent, "read target file", err)
	}
	var head struct {
		Engine string `json:"engine"`
	}
	if err := yaml.Unmarshal(data, &head); err != nil {
		return "", nil // ParseFile reports the YAML error in full
	}
	return head.Engine, nil
}

// ParseFile reads a YAML target file. The file names its engine with `engine:`; the
// rest is the engine's spec.
func ParseFile(path string) (*drivers.Target, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "read target file", err)
	}
	return ParseYAML(path, data)
}

// ParseYAML parses the content of a target file; ref names it in errors.
func ParseYAML(ref string, data []byte) (*drivers.Target, error) {
	var spec map[string]any
	if err := yaml.Unmarshal(data, &spec); err != nil {
		return nil, drivers.Errorf(drivers.Permanent, "target file %s is not valid YAML: %v", ref, err)
	}
	if spec == nil {
		return nil, drivers.Errorf(drivers.Permanent, "target file %s is empty (it needs at least `engine:`)", ref)
	}
	engine, _ := spec["engine"].(string)
	k, ok := kind(engine)
	if !ok {
		return nil, drivers.Errorf(drivers.Permanent, "target file %s: engine %q is not one of %s", ref, engine, strings.Join(Engines(), ", "))
	}
	delete(spec, "engine")
	// The store: section says how to reach the snapshot's object store; the CLI
	// reads it with StoreSection (blobstore resolves its secrets), not the engine.
	delete(spec, StoreKey)
	t := &drivers.Target{Ref: ref, Engine: engine}
	if err := resolveSecrets(t, "", spec); err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "target file "+ref, err)
	}
	dirs, err := k.Check(spec)
	if err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "target file "+ref, err)
	}
	t.Spec, t.Dirs = spec, dirs
	return t, nil
}

// StoreKey is the target file's section of object-store settings (docs/stores.md).
const StoreKey = "store"

// StoreSection returns the store: section of the target file at path as JSON, or
// nil when the file has none. Its secrets are left as references.
func StoreSection(path string) (json.RawMessage, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "read target file", err)
	}
	var spec map[string]json.RawMessage
	if err := yaml.Unmarshal(data, &spec); err != nil {
		return nil, drivers.Errorf(drivers.Permanent, "target file %s is not valid YAML: %v", path, err)
	}
	return spec[StoreKey], nil
}

// resolveSecrets replaces every secret reference in m, a map of the form
// {env: NAME} or {file: PATH}, by a description, and records the value on t.
func resolveSecrets(t *drivers.Target, path string, m map[string]any) error {
	for k, v := range m {
		p := k
		if path != "" {
			p = path + "." + k
		}
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := secretRef(x); ok {
				val, err := ref.resolve()
				if err != nil {
					return fmt.Errorf("secret %s: %w", p, err)
				}
				t.SetSecret(p, val)
				m[k] = ref.String()
				continue
			}
			if err := resolveSecrets(t, p, x); err != nil {
				return err
			}
		case []any:
			for i, e := range x {
				if em, ok := e.(map[string]any); ok {
					if err := resolveSecrets(t, fmt.Sprintf("%s[%d]", p, i), em); err != nil {
						return err
					}
				}
			}
		case string:
			if isSecretKey(k) && x != "" {
				return fmt.Errorf("%s is given in clear text; give it by reference instead: `%s: {env: VAR}` or `%s: {file: /path}`", p, k, k)
			}
		}
	}
	return nil
}

// isSecretKey reports whether a field name holds a secret that must not be written
// in clear in a target file.
func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	return strings.Contains(k, "password") || strings.Contains(k, "secret") || k == "passwd"
}

type secret struct{ env, file string }

func secretRef(m map[string]any) (secret, bool) {
	if len(m) != 1 {
		return secret{}, false
	}
	if v, ok := m["env"].(string); ok {
		return secret{env: v}, true
	}
	if v, ok := m["file"].(string); ok {
		return secret{file: v}, true
	}
	return secret{}, false
}

func (s secret) resolve() (string, error) {
	if s.env != "" {
		v, ok := os.LookupEnv(s.env)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", s.env)
		}
		return v, nil
	}
	data, err := os.ReadFile(s.file)
	if err != nil {
		return "", fmt.Errorf("read secret file: %w", err)
	}
	return strings.TrimRight(string(data), "\r\n"), nil
}

func (s secret) String() string {
	if s.env != "" {
		return "(secret from env " + s.env + ")"
	}
	return "(secret from file " + s.file + ")"
}

// IntOption reads an integer option from a scratch URL query, with a default and
// bounds.
func IntOption(opts url.Values, name string, def, min, max int) (int, error) {
	s := opts.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < min || n > max {
		return 0, fmt.Errorf("option %s=%q must be an integer from %d to %d", name, s, min, max)
	}
	return n, nil
}

// CheckOptions refuses query options not in known.
func CheckOptions(opts url.Values, known ...string) error {
	for k := range opts {
		found := false
		for _, kk := range known {
			if k == kk {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("unknown option %q (known: %s)", k, strings.Join(known, ", "))
		}
	}
	return nil
}

// FreePorts returns n distinct TCP ports free on 127.0.0.1 right now. Another
// process may take one before it is bound; starting a scratch server reports that
// as "address already in use".
func FreePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// AbsDir checks that s is an absolute, clean directory path.
func AbsDir(field, s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("%s is missing", field)
	}
	if !filepath.IsAbs(s) {
		return "", fmt.Errorf("%s %q must be an absolute path", field, s)
	}
	return filepath.Clean(s), nil
}
