package blobstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/restore-run/restore-run/drivers"
)

// StoreConfig says how to reach object stores (s3://, gs://, azblob://): endpoints,
// regions, addressing and credentials. Settings come from three layers, in
// increasing precedence:
//
//  1. the environment (AWS_*, RESTORE_RUN_S3_ENDPOINT, AZURE_STORAGE_*,
//     GOOGLE_APPLICATION_CREDENTIALS), read only when Env is set;
//  2. the store config file (--store-config), entries matched by URL prefix;
//  3. the target file's store: section, same shape.
//
// Layers 2 and 3 are Layers, in that order. A field set in a later layer wins over
// the same field in an earlier one; within a layer the entry with the longest
// matching prefix applies. Secrets are only ever given by reference ({env: VAR} or
// {file: PATH}) and resolved when a store is opened; every resolved secret is added
// to OpenOptions.Redactor and scrubbed from errors. See docs/stores.md.
//
// The zero StoreConfig reads neither the environment nor any file: only what
// Layers say. The CLI sets Env to os.LookupEnv.
type StoreConfig struct {
	// Layers are store settings from files, in increasing precedence (the config
	// file, then the target file's store: section).
	Layers []StoreLayer
	// Env, when set, reads the environment: the standard variables of each store
	// (layer 1) and, for s3:// without explicit keys, the AWS SDK's default
	// credential chain (shared config and credentials files, AWS_PROFILE, SSO, web
	// identity, container credentials). nil leaves the environment out, which is
	// what tests want. {env: VAR} references are read with Env when set, else
	// with os.LookupEnv.
	Env func(key string) (string, bool)
	// MaxAttempts is the number of attempts the store client (the AWS SDK) makes
	// for one request before it returns an error: 0 keeps the SDK's default (3).
	// The download pipeline sets 1 to do its own per-part retries.
	MaxAttempts int
}

// StoreLayer is one file's store settings.
type StoreLayer struct {
	// Source names the file in messages, e.g. "store config /etc/restore-run/config.yaml".
	Source string
	// Stores are its entries, in file order.
	Stores []StoreEntry
}

// StoreEntry is the settings of the stores whose references start with Match. Every
// field is optional but Match; an unset field leaves an earlier layer's value.
type StoreEntry struct {
	// Match is a reference prefix: "s3://backups/" applies to every reference in
	// bucket backups; "s3://backups/etcd/" only below etcd/; "s3://" to every S3
	// reference. A match ends at a "/" boundary: "s3://backups" does not match
	// s3://backups2/.
	Match string `json:"match"`

	// Endpoint is the service URL of an S3-compatible store, e.g.
	// "http://127.0.0.1:7070" or "https://minio.example.net"; for azblob://, the
	// blob service URL (default https://ACCOUNT.blob.core.windows.net/). Without a
	// scheme, https:// is assumed (http:// with disable_https).
	Endpoint string `json:"endpoint,omitempty"`
	// Region of an S3 bucket; default us-east-1.
	Region string `json:"region,omitempty"`
	// PathStyle addresses S3 buckets as ENDPOINT/BUCKET/KEY rather than
	// BUCKET.ENDPOINT/KEY. Default: true when an endpoint is set (most
	// S3-compatible stores), false for AWS itself.
	PathStyle *bool `json:"path_style,omitempty"`
	// DisableHTTPS makes an endpoint given without a scheme use http://.
	DisableHTTPS *bool `json:"disable_https,omitempty"`
	// AccessKeyID, SecretAccessKey and SessionToken are S3 credentials. The
	// secret key and the token are given by reference only; the key id may be
	// written in clear (it is an identifier, not a secret), and is masked anyway.
	AccessKeyID     *SecretRef `json:"access_key_id,omitempty"`
	SecretAccessKey *SecretRef `json:"secret_access_key,omitempty"`
	SessionToken    *SecretRef `json:"session_token,omitempty"`
	// Anonymous sends unsigned requests (public buckets), for s3:// and gs://.
	Anonymous *bool `json:"anonymous,omitempty"`
	// InstanceMetadata allows credentials from the cloud's instance metadata
	// service (EC2 instance roles, GCE service accounts, Azure managed identity).
	// Off by default: restore-run never calls the metadata endpoint unless asked.
	InstanceMetadata *bool `json:"instance_metadata,omitempty"`

	// CredentialsFile is a Google service-account or authorized-user JSON file
	// for gs:// (GOOGLE_APPLICATION_CREDENTIALS in the environment).
	CredentialsFile string `json:"credentials_file,omitempty"`

	// Account is the Azure storage account of azblob:// (AZURE_STORAGE_ACCOUNT).
	Account string `json:"account,omitempty"`
	// AccountKey (AZURE_STORAGE_KEY) or SASToken (AZURE_STORAGE_SAS_TOKEN)
	// authenticate to Azure, by reference only.
	AccountKey *SecretRef `json:"account_key,omitempty"`
	SASToken   *SecretRef `json:"sas_token,omitempty"`
}

// SecretRef is a secret given by reference: {env: VAR} or {file: PATH} (the file's
// content without trailing newlines). A plain string is accepted only where a
// field allows clear text (access_key_id).
type SecretRef struct {
	Env  string `json:"env,omitempty"`
	File string `json:"file,omitempty"`
	// Value is a clear-text value (access_key_id only); never shown.
	Value string `json:"-"`
	clear bool
}

// UnmarshalJSON accepts {env: VAR}, {file: PATH} or, for fields that allow it, a
// plain string.
func (s *SecretRef) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var v string
		if err := json.Unmarshal(data, &v); err != nil {
			return err
		}
		*s = SecretRef{Value: v, clear: true}
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("want {env: VAR} or {file: PATH}")
	}
	var r SecretRef
	for k, v := range m {
		str, ok := v.(string)
		if !ok && (k == "env" || k == "file") {
			return fmt.Errorf("%s: %v is not a string (quote it in YAML, e.g. %s: \"NAME\")", k, v, k)
		}
		switch k {
		case "env":
			r.Env = str
		case "file":
			r.File = str
		default:
			return fmt.Errorf("unknown key %q in a secret reference (want {env: VAR} or {file: PATH})", k)
		}
	}
	if (r.Env == "") == (r.File == "") {
		return fmt.Errorf("a secret reference has exactly one of env or file, not empty")
	}
	*s = r
	return nil
}

// MarshalJSON writes the reference, never a value.
func (s SecretRef) MarshalJSON() ([]byte, error) {
	switch {
	case s.clear:
		return json.Marshal("(given in clear)")
	case s.Env != "":
		return json.Marshal(map[string]string{"env": s.Env})
	default:
		return json.Marshal(map[string]string{"file": s.File})
	}
}

// String describes where the secret comes from, never its value.
func (s SecretRef) String() string {
	switch {
	case s.clear:
		return "(given in clear)"
	case s.Env != "":
		return "(secret from env " + s.Env + ")"
	default:
		return "(secret from file " + s.File + ")"
	}
}

func (s *SecretRef) resolve(lookup func(string) (string, bool)) (string, error) {
	switch {
	case s.clear:
		return s.Value, nil
	case s.Env != "":
		v, ok := lookup(s.Env)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", s.Env)
		}
		return v, nil
	default:
		data, err := os.ReadFile(s.File)
		if err != nil {
			return "", fmt.Errorf("read secret file: %w", err)
		}
		return strings.TrimRight(string(data), "\r\n"), nil
	}
}

// storeFile is the shape of a store config file. Other top-level keys are left to
// other parts of restore-run.
type storeFile struct {
	Stores []json.RawMessage `json:"stores"`
}

// LoadStoreConfig reads a store config file (YAML): a top-level `stores:` list of
// entries. See ParseStoreConfig.
func LoadStoreConfig(path string) (StoreLayer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return StoreLayer{}, drivers.WithHint(drivers.WithClass(drivers.Permanent, "read store config", err),
			"give an existing file with --store-config, or set RESTORE_RUN_CONFIG")
	}
	return ParseStoreConfig("store config "+path, data)
}

// ParseStoreConfig parses the content of a store config file; source names it in
// errors. Top-level keys other than `stores` are ignored; unknown keys inside an
// entry are refused (a misspelt key must not silently drop a setting), and so are
// secrets written in clear.
func ParseStoreConfig(source string, data []byte) (StoreLayer, error) {
	var f storeFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		return StoreLayer{}, drivers.Errorf(drivers.Permanent, "%s is not valid YAML: %v", source, err)
	}
	l := StoreLayer{Source: source}
	for i, raw := range f.Stores {
		e, err := parseEntry(raw, true)
		if err != nil {
			return StoreLayer{}, drivers.WithHint(drivers.Errorf(drivers.Permanent, "%s: stores[%d]: %v", source, i, err), "see docs/stores.md")
		}
		l.Stores = append(l.Stores, e)
	}
	return l, nil
}

// ParseStoreSection parses the store: section of a target file, given as JSON (the
// target file's YAML converted): a list of entries like a store config file's
// stores:, or a single entry whose match defaults to every reference.
func ParseStoreSection(source string, section json.RawMessage) (StoreLayer, error) {
	l := StoreLayer{Source: source}
	section = bytes.TrimSpace(section)
	if len(section) == 0 || string(section) == "null" {
		return l, nil
	}
	fail := func(where string, err error) (StoreLayer, error) {
		return StoreLayer{}, drivers.WithHint(drivers.Errorf(drivers.Permanent, "%s: %s: %v", source, where, err), "see docs/stores.md")
	}
	if section[0] == '[' {
		var raws []json.RawMessage
		if err := json.Unmarshal(section, &raws); err != nil {
			return fail("store", err)
		}
		for i, raw := range raws {
			e, err := parseEntry(raw, true)
			if err != nil {
				return fail(fmt.Sprintf("store[%d]", i), err)
			}
			l.Stores = append(l.Stores, e)
		}
		return l, nil
	}
	e, err := parseEntry(section, false)
	if err != nil {
		return fail("store", err)
	}
	l.Stores = append(l.Stores, e)
	return l, nil
}

// parseEntry decodes and checks one entry.
func parseEntry(raw json.RawMessage, needMatch bool) (StoreEntry, error) {
	var e StoreEntry
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, err
	}
	if e.Match == "" && needMatch {
		return e, fmt.Errorf("match is missing (e.g. match: s3://backups/)")
	}
	if e.Match != "" {
		i := strings.Index(e.Match, "://")
		if i <= 0 {
			return e, fmt.Errorf("match %q is not a reference prefix (e.g. s3://backups/)", e.Match)
		}
		switch strings.ToLower(e.Match[:i]) {
		case "s3", "gs", "azblob":
		default:
			return e, fmt.Errorf("match %q: stores are s3://, gs:// or azblob://", e.Match)
		}
	}
	for name, s := range map[string]*SecretRef{"secret_access_key": e.SecretAccessKey, "session_token": e.SessionToken, "account_key": e.AccountKey, "sas_token": e.SASToken} {
		if s != nil && s.clear {
			return e, fmt.Errorf("%s is given in clear text; give it by reference instead: `%s: {env: VAR}` or `%s: {file: /path}`", name, name, name)
		}
	}
	if e.Endpoint != "" {
		if _, err := endpointURL(e.Endpoint, false); err != nil {
			return e, err
		}
	}
	return e, nil
}

// endpointURL checks an endpoint and adds a scheme when it has none.
func endpointURL(ep string, disableHTTPS bool) (string, error) {
	if !strings.Contains(ep, "://") {
		if disableHTTPS {
			ep = "http://" + ep
		} else {
			ep = "https://" + ep
		}
	}
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("endpoint %q is not an http(s) URL with a host", redactUnparsable(ep))
	}
	if u.User != nil {
		return "", fmt.Errorf("endpoint %s holds user info: give credentials as access_key_id and secret_access_key", redactURL(u))
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// matches reports whether entry prefix m applies to the reference prefix ref
// (scheme://bucket/prefix/), and how long the match is.
func matches(m, ref string) (int, bool) {
	if m == "" {
		return 0, true // a target file's single entry without match
	}
	i := strings.Index(m, "://")
	m = strings.ToLower(m[:i]) + m[i:]
	if !strings.HasSuffix(m, "/") {
		m += "/"
	}
	return len(m), strings.HasPrefix(ref, m)
}

// storeSettings is the merged configuration of one store reference.
type storeSettings struct {
	endpoint, region                         string
	pathStyle, disableHTTPS                  *bool
	anonymous, instanceMetadata              bool
	accessKeyID, secretAccessKey, sessionTok string
	credentialsFile                          string
	account, accountKey, sasToken            string
	// credsFrom says where the credentials came from, for messages.
	credsFrom string
	// secrets are the resolved secret values.
	secrets []string
}

// settingsFor merges the layers for loc. Secrets are resolved here.
func (c StoreConfig) settingsFor(loc *location) (*storeSettings, error) {
	st := &storeSettings{}
	lookup := c.Env
	if lookup == nil {
		lookup = os.LookupEnv
	}
	secret := func(v *string, from string, val string) {
		if val == "" {
			return
		}
		*v = val
		st.secrets = append(st.secrets, val)
		if from != "" {
			st.credsFrom = from
		}
	}
	if env := c.Env; env != nil {
		get := func(keys ...string) string {
			for _, k := range keys {
				if v, ok := env(k); ok && v != "" {
					return v
				}
			}
			return ""
		}
		switch loc.scheme {
		case "s3":
			st.endpoint = get("RESTORE_RUN_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
			st.region = get("AWS_REGION", "AWS_DEFAULT_REGION")
			if id, key := get("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY"), get("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY"); id != "" && key != "" {
				secret(&st.accessKeyID, "the environment (AWS_ACCESS_KEY_ID)", id)
				secret(&st.secretAccessKey, "", key)
				secret(&st.sessionTok, "", get("AWS_SESSION_TOKEN"))
			}
		case "gs":
			st.credentialsFile = get("GOOGLE_APPLICATION_CREDENTIALS")
		case "azblob":
			st.account = get("AZURE_STORAGE_ACCOUNT")
			secret(&st.accountKey, "the environment (AZURE_STORAGE_KEY)", get("AZURE_STORAGE_KEY"))
			secret(&st.sasToken, "the environment (AZURE_STORAGE_SAS_TOKEN)", get("AZURE_STORAGE_SAS_TOKEN"))
		}
	}
	ref := loc.scheme + "://" + loc.host + "/"
	if loc.prefix != "" {
		ref += loc.prefix + "/"
	}
	for _, l := range c.Layers {
		// The longest matching entries first; a later entry of the same length wins.
		type cand struct {
			n int
			i int
		}
		var cands []cand
		for i, e := range l.Stores {
			if n, ok := matches(e.Match, ref); ok {
				cands = append(cands, cand{n, i})
			}
		}
		sort.SliceStable(cands, func(a, b int) bool { return cands[a].n < cands[b].n })
		for _, cd := range cands {
			e := l.Stores[cd.i]
			where := fmt.Sprintf("%s (entry %q)", l.Source, e.Match)
			if err := st.apply(e, where, lookup, secret); err != nil {
				return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent, "%s: %v", where, err), "see docs/stores.md")
			}
		}
	}
	return st, nil
}

// apply overlays entry e on st.
func (st *storeSettings) apply(e StoreEntry, where string, lookup func(string) (string, bool), secret func(*string, string, string)) error {
	if e.Endpoint != "" {
		st.endpoint = e.Endpoint
	}
	if e.Region != "" {
		st.region = e.Region
	}
	if e.PathStyle != nil {
		st.pathStyle = e.PathStyle
	}
	if e.DisableHTTPS != nil {
		st.disableHTTPS = e.DisableHTTPS
	}
	if e.Anonymous != nil {
		st.anonymous = *e.Anonymous
	}
	if e.InstanceMetadata != nil {
		st.instanceMetadata = *e.InstanceMetadata
	}
	if e.CredentialsFile != "" {
		st.credentialsFile = e.CredentialsFile
	}
	if e.Account != "" {
		st.account = e.Account
	}
	res := func(name string, r *SecretRef, v *string) error {
		if r == nil {
			return nil
		}
		val, err := r.resolve(lookup)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if val == "" {
			return fmt.Errorf("%s %s is empty", name, r)
		}
		secret(v, where, val)
		return nil
	}
	if e.AccessKeyID != nil || e.SecretAccessKey != nil {
		if e.AccessKeyID == nil || e.SecretAccessKey == nil {
			return fmt.Errorf("access_key_id and secret_access_key go together")
		}
		// A new key pair replaces the earlier one, token included.
		st.sessionTok = ""
	}
	for _, x := range []struct {
		name string
		r    *SecretRef
		v    *string
	}{
		{"access_key_id", e.AccessKeyID, &st.accessKeyID},
		{"secret_access_key", e.SecretAccessKey, &st.secretAccessKey},
		{"session_token", e.SessionToken, &st.sessionTok},
		{"account_key", e.AccountKey, &st.accountKey},
		{"sas_token", e.SASToken, &st.sasToken},
	} {
		if err := res(x.name, x.r, x.v); err != nil {
			return err
		}
	}
	return nil
}
