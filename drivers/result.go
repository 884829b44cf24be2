package drivers

// RestoreResult is what Execute reports: engine-specific facts about the restored
// data (revision, members, binlog position).
type RestoreResult struct {
	Details map[string]any `json:"details,omitempty"`
}

// Check is one named validation check.
type Check struct {
	Name     string `json:"name"`
	OK       bool   `json:"ok"`
	Detail   string `json:"detail,omitempty"`
	Expected string `json:"expected,omitempty"`
	Actual   string `json:"actual,omitempty"`
	// Pos is where the script made the check (file:line:col), when known.
	Pos string `json:"pos,omitempty"`
}

// ValidationResult is the list of checks Validate ran.
type ValidationResult struct {
	Checks []Check `json:"checks"`
}

// Failed returns the checks that did not pass.
func (v *ValidationResult) Failed() []Check {
	if v == nil {
		return nil
	}
	var out []Check
	for _, c := range v.Checks {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}
