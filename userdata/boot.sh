#!/bin/bash
# gallery boot script, rendered by `provision` into the launch template (stack {{stack}}).
# It holds no secret: the app reads its database credentials from Secrets Manager with
# the instance role at startup. It installs nothing from the internet but the release.
set -euo pipefail
# cloud-init keeps this script's output in /var/log/cloud-init-output.log.

REGION='{{region}}'
BUCKET='{{bucket}}'
RELEASE='{{release}}'
DIR="/opt/gallery/releases/$RELEASE"

if [ "$RELEASE" = "none" ]; then
  echo "no gallery release has been uploaded to s3://$BUCKET/releases/ yet; nothing to start"
  exit 1
fi

# 1. Fetch the release with the instance role's credentials (from the metadata service,
#    IMDSv2) and check it against its sha256. curl signs the requests (SigV4); nothing
#    but the release is downloaded. AWS_ENDPOINT_URL, the SDKs' standard override, is
#    honoured so an emulator can stand in for S3.
imds() {
  curl -sf --retry 10 --retry-connrefused --retry-delay 1 \
    -H "X-aws-ec2-metadata-token: $IMDS_TOKEN" "http://169.254.169.254/latest/$1"
}
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
IMDS_TOKEN="$(curl -sf --retry 10 --retry-connrefused --retry-delay 1 -X PUT \
  -H 'X-aws-ec2-metadata-token-ttl-seconds: 600' http://169.254.169.254/latest/api/token)"
# A new instance (more so of a new role) has no credentials for its first seconds: IMDS
# answers 404 until it does, and curl's --retry does not retry a 404. Wait, bounded.
ROLE=""
for attempt in $(seq 1 120); do
  if ROLE="$(imds meta-data/iam/security-credentials/)" && [ -n "$ROLE" ]; then
    break
  fi
  ROLE=""
  echo "waiting for the instance role's credentials (attempt $attempt)"
  sleep 1
done
if [ -z "$ROLE" ]; then
  echo "the instance role's credentials did not appear within 120 s: is the instance profile attached?"
  exit 1
fi
credentials() {
  local creds attempt
  for attempt in $(seq 1 30); do
    if creds="$(imds "meta-data/iam/security-credentials/$ROLE")"; then
      printf '%s' "$creds"
      return 0
    fi
    sleep 1
  done
  echo "no credentials for role $ROLE" >&2
  return 1
}
if [ -n "${AWS_ENDPOINT_URL:-}" ]; then
  S3_BASE="${AWS_ENDPOINT_URL%/}/$BUCKET"
else
  S3_BASE="https://$BUCKET.s3.$REGION.amazonaws.com"
fi
fetch() {
  local creds
  creds="$(credentials)"
  # The role's keys reach curl through a config file descriptor, never its command line.
  curl -sf --retry 10 --retry-all-errors --retry-delay 2 --aws-sigv4 "aws:amz:$REGION:s3" \
    --config <(printf 'user = "%s:%s"\nheader = "x-amz-security-token: %s"\n' \
      "$(json_field AccessKeyId <<<"$creds")" "$(json_field SecretAccessKey <<<"$creds")" \
      "$(json_field Token <<<"$creds")") \
    -H 'x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' \
    -o "$2" "$S3_BASE/releases/$RELEASE/$1"
}
# The instance's id names its log stream in the stack's log group.
INSTANCE_ID="$(imds meta-data/instance-id)"
install -d -m 0755 "$DIR"
fetch gallery.sha256 "$DIR/gallery.sha256"
fetch gallery "$DIR/gallery.download"
echo "$(cut -d' ' -f1 "$DIR/gallery.sha256")  $DIR/gallery.download" | sha256sum --check --strict
chmod 0755 "$DIR/gallery.download"
mv "$DIR/gallery.download" "$DIR/gallery"
ln -sfn "$DIR" /opt/gallery/current

# 2. Its own user, and the non-secret settings.
id gallery >/dev/null 2>&1 || useradd --system --no-create-home --shell /sbin/nologin gallery
install -d -m 0750 -o root -g gallery /etc/gallery

# 3. The RDS certificate authorities, from AWS's trust store over verified HTTPS (they are
#    in no system trust store): the app verifies its database's certificate and name.
curl -sf --proto '=https' --tlsv1.2 --retry 10 --retry-all-errors --retry-delay 2 \
  -o /etc/gallery/rds-ca.download "https://truststore.pki.rds.amazonaws.com/$REGION/$REGION-bundle.pem"
grep -q 'BEGIN CERTIFICATE' /etc/gallery/rds-ca.download || { echo "the RDS CA bundle is not PEM"; exit 1; }
mv /etc/gallery/rds-ca.download /etc/gallery/rds-ca.pem
chmod 0644 /etc/gallery/rds-ca.pem

cat > /etc/gallery/gallery.env <<ENV
GALLERY_BIND=0.0.0.0:{{port}}
GALLERY_STORAGE=s3://{{bucket}}/images
GALLERY_AWS_REGION={{region}}
GALLERY_DATABASE_SECRET_ARN={{db_secret_arn}}
GALLERY_DATABASE_CA_FILE=/etc/gallery/rds-ca.pem
GALLERY_ADMIN_SECRET_ARN={{admin_secret_arn}}
GALLERY_PUBLIC_URL={{public_url}}
GALLERY_RELEASE={{release}}
GALLERY_BEHIND_PROXY=true
GALLERY_DRAIN_SECS={{drain_secs}}
GALLERY_LOG_JSON=true
# One line per request, and every line shipped to CloudWatch Logs (the instance's stream).
GALLERY_ACCESS_LOG=true
GALLERY_LOG_GROUP={{log_group}}
GALLERY_LOG_STREAM=$INSTANCE_ID
# Longer than the load balancer's 60 s idle timeout, so it never reuses a connection we are closing.
GALLERY_HEADER_TIMEOUT_SECS=65
# Uploads are received on the root volume (the unit's StateDirectory), not in /tmp: /tmp
# is a tmpfs on Amazon Linux 2023, so a photo spooled there would sit in memory.
GALLERY_SPOOL_DIR=/var/lib/gallery/spool
ENV
chmod 0640 /etc/gallery/gallery.env
chgrp gallery /etc/gallery/gallery.env

# `provision exec` (SSM Run Command, which runs as root) goes through this: the command
# runs as the service does, its user with the unit's EnvironmentFile, `gallery` on PATH.
# The file holds no secret (the app fetches those itself); nothing here prints it.
cat > /usr/local/bin/gallery-exec <<'WRAPPER'
#!/bin/bash
set -euo pipefail
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in
    '' | '#'*) ;;
    *=*) export "${line%%=*}=${line#*=}" ;;
  esac
done < /etc/gallery/gallery.env
export PATH="/opt/gallery/current:/usr/local/bin:/usr/bin:/bin"
export HOME=/ USER=gallery LOGNAME=gallery
cd /
exec setpriv --reuid=gallery --regid=gallery --init-groups --no-new-privs -- "$@"
WRAPPER
chmod 0755 /usr/local/bin/gallery-exec

# 4. A hardened service that restarts on failure. Its output goes to the journal and to
#    the console too, so EC2's console output (what a failed deploy shows) has the app's
#    last lines even when the instance is gone or unreachable.
cat > /etc/systemd/system/gallery.service <<'UNIT'
[Unit]
Description=gallery image gallery
Wants=network-online.target
After=network-online.target

[Service]
User=gallery
Group=gallery
EnvironmentFile=/etc/gallery/gallery.env
ExecStart=/opt/gallery/current/gallery serve
StateDirectory=gallery
StateDirectoryMode=0700
Restart=on-failure
RestartSec=2
StandardOutput=journal+console
StandardError=journal+console
TimeoutStopSec=90
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
CapabilityBoundingSet=
AmbientCapabilities=
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
UNIT

systemctl daemon-reload
systemctl enable --now gallery.service
echo "gallery $RELEASE started"
