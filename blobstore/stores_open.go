package blobstore

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	"gocloud.dev/blob/azureblob"
	"gocloud.dev/blob/gcsblob"
	"gocloud.dev/blob/s3blob"
	"gocloud.dev/gcp"
	"golang.org/x/oauth2/google"

	"github.com/restore-run/restore-run/drivers"
	"github.com/restore-run/restore-run/redact"
)

// DefaultS3Region is the region of an S3 store when none is configured.
const DefaultS3Region = "us-east-1"

// credentialsTimeout bounds the eager credential lookup of the AWS default chain.
const credentialsTimeout = 30 * time.Second

// hintStores is the fix for a store that cannot be reached as configured.
const hintStores = "configure the store in the store config file (--store-config) or the environment; see docs/stores.md"

// openStore opens the bucket of an s3://, gs:// or azblob:// reference with the
// merged settings of cfg. It adds every resolved secret to loc (scrubbed from
// errors) and to red.
func openStore(ctx context.Context, loc *location, cfg StoreConfig, red *redact.Redactor) (*blob.Bucket, error) {
	if len(loc.secrets) > 0 || strings.Contains(loc.bucketURL, "?") {
		return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent,
			"snapshot reference %s: %s:// references take no credentials or query options", loc.redacted, loc.scheme),
			"write "+loc.scheme+"://BUCKET/PREFIX and put endpoint, region and credentials in the store config (docs/stores.md)")
	}
	st, err := cfg.settingsFor(loc)
	if err != nil {
		return nil, err
	}
	loc.secrets = append(loc.secrets, st.secrets...)
	addSecrets(red, st.secrets...)
	var b *blob.Bucket
	switch loc.scheme {
	case "s3":
		b, err = openS3(ctx, loc, cfg, st, red)
	case "gs":
		b, err = openGCS(ctx, loc, st)
	case "azblob":
		b, err = openAzure(ctx, loc, st)
	default:
		err = drivers.Errorf(drivers.Permanent, "snapshot reference %s: unsupported scheme %q", loc.redacted, loc.scheme)
	}
	if err != nil {
		return nil, loc.scrub(err)
	}
	return b, nil
}

// addSecrets teaches red (which may be nil) the secrets.
func addSecrets(red *redact.Redactor, secrets ...string) {
	if red != nil {
		red.Add(secrets...)
	}
}

func noCredentials(loc *location, hint string) error {
	return drivers.WithHint(drivers.Errorf(drivers.Permanent, "no credentials for %s://%s", loc.scheme, loc.host), hint)
}

// openS3 opens an S3 bucket with the AWS SDK v2.
func openS3(ctx context.Context, loc *location, cfg StoreConfig, st *storeSettings, red *redact.Redactor) (*blob.Bucket, error) {
	disableHTTPS := st.disableHTTPS != nil && *st.disableHTTPS
	opts := s3.Options{
		Region:                     st.region,
		RetryMaxAttempts:           cfg.MaxAttempts,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if opts.Region == "" {
		opts.Region = DefaultS3Region
	}
	if st.endpoint != "" {
		ep, err := endpointURL(st.endpoint, disableHTTPS)
		if err != nil {
			return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent, "store %s://%s: %v", loc.scheme, loc.host, err), hintStores)
		}
		opts.BaseEndpoint = aws.String(ep)
		// S3-compatible stores mostly serve buckets as paths of the endpoint.
		opts.UsePathStyle = st.pathStyle == nil || *st.pathStyle
	} else if st.pathStyle != nil {
		opts.UsePathStyle = *st.pathStyle
	}
	if disableHTTPS && st.endpoint == "" {
		opts.EndpointOptions.DisableHTTPS = true
	}
	switch {
	case st.accessKeyID != "" && st.secretAccessKey != "":
		opts.Credentials = credentials.NewStaticCredentialsProvider(st.accessKeyID, st.secretAccessKey, st.sessionTok)
	case st.anonymous:
		opts.Credentials = aws.AnonymousCredentials{}
	case cfg.Env != nil:
		// The SDK's default chain (shared files, profile, SSO, web identity,
		// container credentials), instance metadata only when asked for.
		imdsState := imds.ClientDisabled
		if st.instanceMetadata {
			imdsState = imds.ClientEnabled
		}
		lctx, cancel := context.WithTimeout(ctx, credentialsTimeout)
		defer cancel()
		ac, err := awsconfig.LoadDefaultConfig(lctx, awsconfig.WithEC2IMDSClientEnableState(imdsState))
		if err != nil {
			return nil, drivers.WithHint(drivers.WithClass(drivers.Permanent, "load AWS configuration for "+loc.redacted, err), hintStores)
		}
		if ac.Credentials == nil {
			return nil, noCredentials(loc, s3CredsHint)
		}
		creds, err := ac.Credentials.Retrieve(lctx)
		if err != nil || !creds.HasKeys() {
			if ctx.Err() != nil {
				return nil, cancelled(ctx, "open "+loc.redacted)
			}
			return nil, noCredentials(loc, s3CredsHint)
		}
		loc.secrets = append(loc.secrets, creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken)
		addSecrets(red, creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken)
		opts.Credentials = &redactingProvider{inner: ac.Credentials, red: red}
	default:
		return nil, noCredentials(loc, s3CredsHint)
	}
	client := s3.New(opts)
	b, err := s3blob.OpenBucket(ctx, client, loc.host, &s3blob.Options{RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired})
	if err != nil {
		return nil, drivers.WithHint(drivers.WithClass(drivers.Permanent, "open "+loc.redacted, err), hintStores)
	}
	return b, nil
}

const s3CredsHint = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, give access_key_id and secret_access_key by reference in the store config, " +
	"or set anonymous: true for a public bucket; see docs/stores.md"

// redactingProvider hands out the default chain's credentials and teaches the
// redactor every key it sees (credentials may be refreshed during a run).
type redactingProvider struct {
	inner aws.CredentialsProvider
	red   *redact.Redactor
}

func (p *redactingProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := p.inner.Retrieve(ctx)
	if err == nil {
		addSecrets(p.red, c.AccessKeyID, c.SecretAccessKey, c.SessionToken)
	}
	return c, err
}

// gcsScope is the OAuth scope gs:// needs (Pack writes).
const gcsScope = "https://www.googleapis.com/auth/devstorage.read_write"

// openGCS opens a Google Cloud Storage bucket. Credentials come from a
// service-account or authorized-user file, anonymous access, or (when asked) the
// machine's default credentials, metadata server included.
func openGCS(ctx context.Context, loc *location, st *storeSettings) (*blob.Bucket, error) {
	var client *gcp.HTTPClient
	var err error
	switch {
	case st.credentialsFile != "":
		data, rerr := os.ReadFile(st.credentialsFile)
		if rerr != nil {
			return nil, drivers.WithHint(drivers.WithClass(drivers.Permanent, "read Google credentials file", rerr), hintStores)
		}
		var head struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(data, &head)
		var typ google.CredentialsType
		switch head.Type {
		case string(google.ServiceAccount), string(google.AuthorizedUser):
			typ = google.CredentialsType(head.Type)
		default:
			return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent, "Google credentials file %s: type %q is not service_account or authorized_user", st.credentialsFile, head.Type), hintStores)
		}
		creds, cerr := google.CredentialsFromJSONWithType(ctx, data, typ, gcsScope)
		if cerr != nil {
			return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent, "Google credentials file %s: %v", st.credentialsFile, cerr), hintStores)
		}
		client, err = gcp.NewHTTPClient(gcp.DefaultTransport(), creds.TokenSource)
	case st.anonymous:
		client = gcp.NewAnonymousHTTPClient(gcp.DefaultTransport())
	case st.instanceMetadata:
		creds, cerr := gcp.DefaultCredentials(ctx)
		if cerr != nil {
			return nil, drivers.WithHint(drivers.WithClass(drivers.Permanent, "no credentials for "+loc.scheme+"://"+loc.host, cerr), hintStores)
		}
		client, err = gcp.NewHTTPClient(gcp.DefaultTransport(), creds.TokenSource)
	default:
		return nil, noCredentials(loc, "set GOOGLE_APPLICATION_CREDENTIALS or credentials_file in the store config to a service-account JSON file, "+
			"anonymous: true for a public bucket, or instance_metadata: true on a GCE machine; see docs/stores.md")
	}
	if err != nil {
		return nil, drivers.WithHint(drivers.WithClass(drivers.Permanent, "open "+loc.redacted, err), hintStores)
	}
	b, err := gcsblob.OpenBucket(ctx, client, loc.host, nil)
	if err != nil {
		return nil, drivers.WithHint(drivers.WithClass(drivers.Permanent, "open "+loc.redacted, err), hintStores)
	}
	return b, nil
}

// openAzure opens an Azure Blob Storage container with a shared key, a SAS token or
// (when asked) the default Azure credential chain.
func openAzure(ctx context.Context, loc *location, st *storeSettings) (*blob.Bucket, error) {
	disableHTTPS := st.disableHTTPS != nil && *st.disableHTTPS
	svc := st.endpoint
	if svc == "" {
		if st.account == "" {
			return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent, "no storage account for %s://%s", loc.scheme, loc.host),
				"set AZURE_STORAGE_ACCOUNT or account in the store config (or endpoint); see docs/stores.md")
		}
		svc = st.account + ".blob.core.windows.net"
	}
	svc, err := endpointURL(svc, disableHTTPS)
	if err != nil {
		return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent, "store %s://%s: %v", loc.scheme, loc.host, err), hintStores)
	}
	containerURL := svc + "/" + url.PathEscape(loc.host)
	var c *container.Client
	switch {
	case st.accountKey != "":
		if st.account == "" {
			return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent, "store %s://%s: an account key needs the account name", loc.scheme, loc.host), "set account or AZURE_STORAGE_ACCOUNT")
		}
		cred, cerr := azblob.NewSharedKeyCredential(st.account, st.accountKey)
		if cerr != nil {
			return nil, drivers.WithHint(drivers.Errorf(drivers.Permanent, "store %s://%s: the account key is not valid base64", loc.scheme, loc.host), hintStores)
		}
		c, err = container.NewClientWithSharedKeyCredential(containerURL, cred, nil)
	case st.sasToken != "":
		c, err = container.NewClientWithNoCredential(containerURL+"?"+strings.TrimPrefix(st.sasToken, "?"), nil)
	case st.instanceMetadata:
		cred, cerr := azidentity.NewDefaultAzureCredential(nil)
		if cerr != nil {
			return nil, drivers.WithHint(drivers.WithClass(drivers.Permanent, "no credentials for "+loc.scheme+"://"+loc.host, cerr), hintStores)
		}
		c, err = container.NewClient(containerURL, cred, nil)
	default:
		return nil, noCredentials(loc, "set AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN, account_key or sas_token by reference in the store config, "+
			"or instance_metadata: true for a managed identity; see docs/stores.md")
	}
	if err != nil {
		return nil, drivers.WithHint(drivers.WithClass(drivers.Permanent, "open "+loc.redacted, err), hintStores)
	}
	b, err := azureblob.OpenBucket(ctx, c, nil)
	if err != nil {
		return nil, drivers.WithHint(drivers.WithClass(drivers.Permanent, "open "+loc.redacted, err), hintStores)
	}
	return b, nil
}
