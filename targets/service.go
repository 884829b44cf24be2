package targets

import "fmt"

// CheckService validates a service-control description from a target file:
//
//	service: {systemd: etcd.service}
//	service: {start: [argv...], stop: [argv...], timeout: 60}
func CheckService(field string, v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%s must be a map with `systemd: UNIT` or `start:` and `stop:` command lists", field)
	}
	_, hasUnit := m["systemd"]
	_, hasStart := m["start"]
	_, hasStop := m["stop"]
	switch {
	case hasUnit && (hasStart || hasStop):
		return fmt.Errorf("%s: give either systemd or start/stop commands, not both", field)
	case hasUnit:
		if s, ok := m["systemd"].(string); !ok || s == "" {
			return fmt.Errorf("%s.systemd must be a unit name", field)
		}
	case hasStart && hasStop:
		for _, k := range []string{"start", "stop"} {
			if err := checkArgv(field+"."+k, m[k]); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("%s needs `systemd: UNIT` or both `start:` and `stop:` commands (argv lists)", field)
	}
	for k := range m {
		switch k {
		case "systemd", "start", "stop", "timeout":
		default:
			return fmt.Errorf("%s: unknown key %q (systemd, start, stop, timeout)", field, k)
		}
	}
	if t, ok := m["timeout"]; ok {
		if f, ok := t.(float64); !ok || f <= 0 {
			return fmt.Errorf("%s.timeout must be a positive number of seconds", field)
		}
	}
	return nil
}

func checkArgv(field string, v any) error {
	l, ok := v.([]any)
	if !ok || len(l) == 0 {
		return fmt.Errorf("%s must be a non-empty list of strings (the program and its arguments)", field)
	}
	for i, e := range l {
		if s, ok := e.(string); !ok || s == "" {
			return fmt.Errorf("%s[%d] must be a non-empty string", field, i)
		}
	}
	return nil
}
