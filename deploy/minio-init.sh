#!/bin/sh
# One-shot, at every start-up: create the artifact bucket and an S3 key for MLflow that
# reaches that bucket only (the server never holds the MinIO root key). Safe to re-run.
set -eu

# mc's parser reads an argument that starts with "-" as a flag, wherever it stands (a
# `--` before the values was not tried: no mc binary where this was written). Refuse such a
# value by its name, never echoing it, instead of failing later with a usage error that
# keeps MLflow from starting; deploy/.env.example makes hex secrets.
for name in MINIO_ROOT_USER MINIO_ROOT_PASSWORD MLFLOW_S3_ACCESS_KEY MLFLOW_S3_SECRET_KEY MLFLOW_BUCKET; do
    eval "value=\${$name:-}"
    case "$value" in
        "") echo "minio-init: error: $name is empty" >&2; exit 2 ;;
        -*) echo "minio-init: error: $name starts with '-', which mc reads as a flag:" \
                 "make it with python -c 'import secrets; print(secrets.token_hex(32))'" >&2
            exit 2 ;;
    esac
done

mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "local/$MLFLOW_BUCKET"

policy=/tmp/mlflow-artifacts-policy.json
cat >"$policy" <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow",
     "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
     "Resource": ["arn:aws:s3:::$MLFLOW_BUCKET"]},
    {"Effect": "Allow",
     "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
     "Resource": ["arn:aws:s3:::$MLFLOW_BUCKET/*"]}
  ]
}
JSON
mc admin policy create local mlflow-artifacts "$policy" >/dev/null
# Re-running sets the secret again, which is how rotating MLFLOW_S3_SECRET_KEY works.
mc admin user add local "$MLFLOW_S3_ACCESS_KEY" "$MLFLOW_S3_SECRET_KEY" >/dev/null
# Attaching twice is an error in mc; on a re-run the policy is already there.
if ! out=$(mc admin policy attach local mlflow-artifacts --user "$MLFLOW_S3_ACCESS_KEY" 2>&1); then
    case "$out" in
        *already*) ;;
        *) echo "$out" >&2; exit 1 ;;
    esac
fi
echo "bucket $MLFLOW_BUCKET ready for user $MLFLOW_S3_ACCESS_KEY"
