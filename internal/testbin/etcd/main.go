// Command etcd is a real etcd server built from this module's own etcd
// dependency (go.etcd.io/etcd/server/v3), so the end-to-end tests can run etcd
// members as separate OS processes, as on a real installation, without a
// system-wide etcd. It takes etcd's own flags (etcd --help).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
