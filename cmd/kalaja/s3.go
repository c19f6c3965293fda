package main

import (
	"context"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/kalaja/kalaja/internal/store/s3"
)

// s3Options returns the settings of an S3 store that come from the
// environment: the credentials, tried in this order: AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN; MINIO_ROOT_USER and
// MINIO_ROOT_PASSWORD; the AWS CLI's credentials file; the MinIO client's
// configuration; and the instance or container role on AWS.
func s3Options() s3.Options {
	return s3.Options{Creds: credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.EnvMinio{},
		&credentials.FileAWSCredentials{},
		&credentials.FileMinioClient{},
		&credentials.IAM{},
	})}
}

// openS3 opens the repository at an "s3:" location.
func openS3(ctx context.Context, location string) (*s3.Store, error) {
	loc, err := s3.ParseLocation(location)
	if err != nil {
		return nil, usageError{err}
	}
	return s3.Open(ctx, loc, s3Options())
}

// createS3 prepares a new repository at an "s3:" location; see s3.Create
// for noLock.
func createS3(ctx context.Context, location string, noLock bool) (*s3.Store, error) {
	loc, err := s3.ParseLocation(location)
	if err != nil {
		return nil, usageError{err}
	}
	return s3.Create(ctx, loc, s3Options(), noLock)
}
