package targets

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/restore-run/restore-run/drivers"
)

// StagingSuffix is appended to a data dir to name the sibling directory where a
// restore stages new data and keeps the previous data until validation passes.
// Being a sibling keeps it on the same filesystem, so swaps are renames.
const StagingSuffix = ".restore-run"

func init() {
	Register(Kind{
		Engine:     "etcd",
		Scratch:    etcdScratch,
		Check:      etcdCheck,
		ScratchDoc: "members=N (1-7, default 1), token=NAME (initial cluster token; default: one unique to the run)",
	})
}

func etcdScratch(opts url.Values, dir string) (*drivers.Target, error) {
	if err := CheckOptions(opts, "members", "token"); err != nil {
		return nil, err
	}
	n, err := IntOption(opts, "members", 1, 1, 7)
	if err != nil {
		return nil, err
	}
	token := opts.Get("token") // "" lets the driver pick one unique to the run
	ports, err := FreePorts(2 * n)
	if err != nil {
		return nil, err
	}
	var members []any
	var cluster []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("m%d", i+1)
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i])
		client := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])
		members = append(members, map[string]any{
			"name":       name,
			"peer_url":   peer,
			"client_url": client,
			"data_dir":   filepath.Join(dir, name+".etcd"),
		})
		cluster = append(cluster, name+"="+peer)
	}
	return &drivers.Target{
		Spec: map[string]any{
			"initial_cluster_token": token,
			"initial_cluster":       strings.Join(cluster, ","),
			"members":               members,
		},
		Dirs: []string{dir},
	}, nil
}

func etcdCheck(spec map[string]any) ([]string, error) {
	raw, ok := spec["members"].([]any)
	if !ok || len(raw) == 0 {
		return nil, fmt.Errorf("members: a non-empty list of {name, peer_url, client_url, data_dir, service} is required")
	}
	for k := range spec {
		switch k {
		case "members", "initial_cluster_token":
		default:
			return nil, fmt.Errorf("unknown key %q (etcd target files have members and initial_cluster_token)", k)
		}
	}
	if tok, ok := spec["initial_cluster_token"]; ok {
		if s, ok := tok.(string); !ok || s == "" {
			return nil, fmt.Errorf("initial_cluster_token must be a non-empty string")
		}
	} else {
		// The driver picks a token unique to the run, so the restored cluster
		// gets new member and cluster IDs (etcd derives them from peer URLs and
		// the token).
		spec["initial_cluster_token"] = ""
	}
	var dirs, cluster []string
	names := map[string]bool{}
	for i, r := range raw {
		m, ok := r.(map[string]any)
		field := fmt.Sprintf("members[%d]", i)
		if !ok {
			return nil, fmt.Errorf("%s must be a map", field)
		}
		for k := range m {
			switch k {
			case "name", "peer_url", "client_url", "data_dir", "service":
			default:
				return nil, fmt.Errorf("%s: unknown key %q (name, peer_url, client_url, data_dir, service)", field, k)
			}
		}
		name, _ := m["name"].(string)
		if name == "" || names[name] {
			return nil, fmt.Errorf("%s.name must be a unique non-empty string", field)
		}
		names[name] = true
		for _, k := range []string{"peer_url", "client_url"} {
			s, _ := m[k].(string)
			u, err := url.Parse(s)
			if s == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, fmt.Errorf("%s.%s must be an http(s) URL like http://10.0.0.1:2380", field, k)
			}
		}
		dd, err := AbsDir(field+".data_dir", fmt.Sprint(m["data_dir"]))
		if m["data_dir"] == nil || err != nil {
			if err == nil {
				err = fmt.Errorf("%s.data_dir is missing", field)
			}
			return nil, err
		}
		m["data_dir"] = dd
		if err := CheckService(field+".service", m["service"]); err != nil {
			return nil, err
		}
		dirs = append(dirs, dd, dd+StagingSuffix)
		cluster = append(cluster, name+"="+m["peer_url"].(string))
	}
	spec["initial_cluster"] = strings.Join(cluster, ",")
	return dirs, nil
}
