package blobstore

// TransferOptions tune downloads. (Filled in by the download pipeline work.)
type TransferOptions struct{}
