package drivers

// Target is the place a snapshot is restored into: either a scratch target the engine
// creates (scratch://ENGINE?options) or existing servers described by a target file.
type Target struct {
	// Ref is the reference as given (a scratch:// URL or a target file path).
	Ref string `json:"ref"`
	// Scratch is true for throwaway targets the run creates and tears down.
	Scratch bool `json:"scratch"`
	// Engine is the database engine the target runs.
	Engine string `json:"engine"`
	// Spec is the engine-specific description (members, hosts, data dirs, service
	// control), as read from the target file or generated for a scratch target.
	// Secret values never appear here: they are replaced by references.
	Spec map[string]any `json:"spec"`
	// Dirs are the directories the restore may create, move and remove files in,
	// besides the run's work dir.
	Dirs []string `json:"dirs,omitempty"`
	// Endpoints are the client endpoints of the restored target, once known.
	Endpoints []string `json:"endpoints,omitempty"`

	secrets map[string]string
}

// SetSecret records a resolved secret value under name (e.g. "password"). Secrets are
// kept out of Spec and out of the target's JSON form.
func (t *Target) SetSecret(name, value string) {
	if t.secrets == nil {
		t.secrets = map[string]string{}
	}
	t.secrets[name] = value
}

// Secret returns the secret recorded under name.
func (t *Target) Secret(name string) (string, bool) {
	v, ok := t.secrets[name]
	return v, ok
}

// SecretValues returns every secret value, for redaction.
func (t *Target) SecretValues() []string {
	var out []string
	for _, v := range t.secrets {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}
