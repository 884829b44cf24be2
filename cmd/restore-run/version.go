package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/restore-run/restore-run/engine"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the driver APIs supported and key library versions",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "restore-run %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			fmt.Fprintf(out, "driver api: %v\n", engine.SupportedAPIs)
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, dep := range bi.Deps {
					switch dep.Path {
					case "go.starlark.net", "go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/etcdutl/v3", "gocloud.dev":
						fmt.Fprintf(out, "%s %s\n", dep.Path, dep.Version)
					}
				}
			}
		},
	}
}
