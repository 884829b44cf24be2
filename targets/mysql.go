package targets

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/restore-run/restore-run/drivers"
)

// maxSocketPath is the longest unix socket path that fits sockaddr_un on Linux
// (108 bytes with the terminating NUL), with a little margin.
const maxSocketPath = 100

func init() {
	Register(Kind{
		Engine:     "mysql",
		Scratch:    mysqlScratch,
		Check:      mysqlCheck,
		ScratchDoc: "none: a throwaway mariadbd (from PATH) in the run's work dir, on a unix socket and a free loopback port",
	})
}

// mysqlScratch describes a throwaway mariadbd under dir/mysql: its data dir,
// socket, pid file and logs. The driver creates the data dir (mariadb-install-db
// for a logical restore, the restored backup for a physical one) and starts it.
func mysqlScratch(opts url.Values, dir string) (*drivers.Target, error) {
	if err := CheckOptions(opts); err != nil {
		return nil, err
	}
	ports, err := FreePorts(1)
	if err != nil {
		return nil, err
	}
	base := filepath.Join(dir, "mysql")
	socket := filepath.Join(base, "mysqld.sock")
	if abs, err := filepath.Abs(socket); err == nil {
		socket = abs
	}
	if len(socket) > maxSocketPath {
		// A deep work dir: the socket goes to a short private path instead.
		b := make([]byte, 6)
		rand.Read(b)
		socket = filepath.Join(os.TempDir(), "restore-run-"+hex.EncodeToString(b)+".sock")
	}
	return &drivers.Target{
		Spec: map[string]any{
			"dir":     base,
			"datadir": filepath.Join(base, "data"),
			"socket":  socket,
			"host":    "127.0.0.1",
			"port":    ports[0],
			"user":    "root",
			"os_user": "",
			"service": nil,
		},
		Dirs: []string{dir},
	}, nil
}

// mysqlCheck validates a target file describing an existing MySQL/MariaDB server.
//
//	engine: mysql
//	host: 127.0.0.1          # or socket: /run/mysqld/mysqld.sock
//	port: 3306
//	user: restore
//	password: {env: MYSQL_RESTORE_PASSWORD}
//	datadir: /var/lib/mysql   # physical restores only
//	os_user: mysql            # owner of the data dir files (default mysql)
//	service: {systemd: mariadb.service}   # physical restores only
func mysqlCheck(spec map[string]any) ([]string, error) {
	for k := range spec {
		switch k {
		case "host", "port", "socket", "user", "password", "datadir", "os_user", "service":
		default:
			return nil, fmt.Errorf("unknown key %q (mysql target files have host, port, socket, user, password, datadir, os_user, service)", k)
		}
	}
	str := func(k string) (string, error) {
		v, ok := spec[k]
		if !ok || v == nil {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("%s must be a string", k)
		}
		return s, nil
	}
	host, err := str("host")
	if err != nil {
		return nil, err
	}
	socket, err := str("socket")
	if err != nil {
		return nil, err
	}
	if host == "" && socket == "" {
		return nil, fmt.Errorf("give host (and port) or socket: how to reach the server")
	}
	if socket != "" && !filepath.IsAbs(socket) {
		return nil, fmt.Errorf("socket %q must be an absolute path", socket)
	}
	port := 3306.0
	if v, ok := spec["port"]; ok && v != nil {
		f, ok := v.(float64)
		if !ok || f < 1 || f > 65535 || f != float64(int(f)) {
			return nil, fmt.Errorf("port must be an integer from 1 to 65535")
		}
		port = f
	}
	user, err := str("user")
	if err != nil {
		return nil, err
	}
	if user == "" {
		return nil, fmt.Errorf("user is missing (the account restore-run connects as)")
	}
	if p, ok := spec["password"]; ok {
		if _, ok := p.(string); !ok {
			return nil, fmt.Errorf("password must be given by reference: `password: {env: VAR}` or `password: {file: /path}`")
		}
	}
	osUser, err := str("os_user")
	if err != nil {
		return nil, err
	}
	if osUser == "" {
		osUser = "mysql"
	}
	var dirs []string
	datadir, err := str("datadir")
	if err != nil {
		return nil, err
	}
	if datadir != "" {
		if datadir, err = AbsDir("datadir", datadir); err != nil {
			return nil, err
		}
		dirs = []string{datadir, datadir + StagingSuffix}
		if spec["service"] == nil {
			return nil, fmt.Errorf("datadir is given but service is not: a physical restore must stop and start the server (service: {systemd: mariadb.service} or start:/stop: commands)")
		}
	}
	if spec["service"] != nil {
		if err := CheckService("service", spec["service"]); err != nil {
			return nil, err
		}
	}
	spec["host"], spec["socket"], spec["port"], spec["user"] = host, socket, port, user
	spec["datadir"], spec["os_user"] = datadir, osUser
	if _, ok := spec["service"]; !ok {
		spec["service"] = nil
	}
	spec["dir"] = ""
	return dirs, nil
}
