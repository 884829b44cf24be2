package cassops

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/restore-run/restore-run/drivers"
)

// EnvLib is the environment variable naming the folder of Cassandra jars (the
// cassandra-all jar and every runtime dependency). A target's own setting (the
// scratch option lib=, the target file's cassandra_lib) wins over it.
const EnvLib = "RESTORE_RUN_CASSANDRA_LIB"

// DefaultLib is where ./test.sh installs the jars, relative to the repository root
// (and to the current directory when no other setting is given).
const DefaultLib = "third_party/cassandra/lib"

// InstallHint tells how to get the jars.
const InstallHint = "run ./test.sh (its install_cassandra step copies cassandra-all 5.0 and its dependencies into " +
	DefaultLib + "), or set " + EnvLib + " to a folder holding cassandra-all-5.0.*.jar and its runtime dependencies"

// Home is a folder of Cassandra jars and the java that runs them.
type Home struct {
	// Lib holds cassandra-all-VERSION.jar and its runtime dependencies.
	Lib string
	// Version is the cassandra-all version, e.g. "5.0.8".
	Version string
	// Java is the java binary ($JAVA_HOME/bin/java, else java on PATH).
	Java string
	// Jamm is the jamm jar (the -javaagent Cassandra measures memory with).
	Jamm string
}

var cassandraJar = regexp.MustCompile(`^cassandra-all-(\d+\.\d+\.\d+[^/]*)\.jar$`)

// FindHome locates the jars: dir if given, else $RESTORE_RUN_CASSANDRA_LIB, else
// ./third_party/cassandra/lib. A folder without cassandra-all-*.jar is refused with
// the way to install it.
func FindHome(dir string) (*Home, error) {
	from := "the given folder"
	if dir == "" {
		dir, from = os.Getenv(EnvLib), "$"+EnvLib
	}
	if dir == "" {
		dir, from = DefaultLib, "the default folder"
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, drivers.WithClass(drivers.Permanent, "cassandra jars", err)
	}
	entries, err := os.ReadDir(abs)
	if err != nil {
		return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent, "Cassandra jars not found: %s (%s) cannot be read: %v", abs, from, err), InstallHint)
	}
	h := &Home{Lib: abs}
	var versions []string
	for _, e := range entries {
		if m := cassandraJar.FindStringSubmatch(e.Name()); m != nil {
			versions = append(versions, m[1])
		}
		if strings.HasPrefix(e.Name(), "jamm-") && strings.HasSuffix(e.Name(), ".jar") {
			h.Jamm = filepath.Join(abs, e.Name())
		}
	}
	sort.Strings(versions)
	switch {
	case len(versions) == 0:
		return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent, "Cassandra jars not found: %s (%s) holds no cassandra-all-*.jar", abs, from), InstallHint)
	case len(versions) > 1:
		return nil, drivers.Errorf(drivers.Permanent, "%s holds several cassandra-all jars (%s); keep one version per folder", abs, strings.Join(versions, ", "))
	case !strings.HasPrefix(versions[0], "5.0"):
		return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent, "%s holds cassandra-all %s; restore-run runs Cassandra 5.0 from jars (the JDK 17 it needs)", abs, versions[0]), InstallHint)
	}
	h.Version = versions[0]
	if h.Jamm == "" {
		return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent, "%s has cassandra-all %s but no jamm jar: the runtime dependencies are missing", abs, h.Version), InstallHint)
	}
	java, err := findJava()
	if err != nil {
		return nil, err
	}
	h.Java = java
	return h, nil
}

func findJava() (string, error) {
	if jh := os.Getenv("JAVA_HOME"); jh != "" {
		p := filepath.Join(jh, "bin", "java")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath("java")
	if err != nil {
		return "", drivers.WithHint(drivers.Errorf(drivers.Permanent, "java not found (JAVA_HOME unset and no java on PATH)"),
			"install a JDK 17 (Debian: apt-get install openjdk-17-jdk-headless)")
	}
	return p, nil
}

// Classpath is the JVM class path: every jar of Lib.
func (h *Home) Classpath() string { return filepath.Join(h.Lib, "*") }

// String names the home in logs.
func (h *Home) String() string { return fmt.Sprintf("Cassandra %s jars at %s", h.Version, h.Lib) }
