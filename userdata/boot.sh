#!/bin/bash
# gallery boot script, rendered by `provision` into the launch template (stack {{stack}}).
# It holds no secret: the app reads its database credentials from Secrets Manager with
# the instance role at startup. It installs nothing from the internet but the release.
set -euo pipefail
exec > >(tee -a /var/log/gallery-boot.log | logger -t gallery-boot) 2>&1

REGION='{{region}}'
BUCKET='{{bucket}}'
RELEASE='{{release}}'
DIR="/opt/gallery/releases/$RELEASE"

if [ "$RELEASE" = "none" ]; then
  echo "no gallery release has been uploaded to s3://$BUCKET/releases/ yet; nothing to start"
  exit 1
fi

# 1. Fetch the release with the instance role and check it against its sha256.
install -d -m 0755 "$DIR"
aws s3 cp --only-show-errors --region "$REGION" "s3://$BUCKET/releases/$RELEASE/gallery" "$DIR/gallery.download"
aws s3 cp --only-show-errors --region "$REGION" "s3://$BUCKET/releases/$RELEASE/gallery.sha256" "$DIR/gallery.sha256"
echo "$(cut -d' ' -f1 "$DIR/gallery.sha256")  $DIR/gallery.download" | sha256sum --check --strict
chmod 0755 "$DIR/gallery.download"
mv "$DIR/gallery.download" "$DIR/gallery"
ln -sfn "$DIR" /opt/gallery/current

# 2. Its own user, and the non-secret settings.
id gallery >/dev/null 2>&1 || useradd --system --no-create-home --shell /sbin/nologin gallery
install -d -m 0750 -o root -g gallery /etc/gallery
cat > /etc/gallery/gallery.env <<ENV
GALLERY_BIND=0.0.0.0:{{port}}
GALLERY_STORAGE=s3://{{bucket}}
GALLERY_AWS_REGION={{region}}
GALLERY_DATABASE_SECRET_ARN={{db_secret_arn}}
GALLERY_ADMIN_SECRET_ARN={{admin_secret_arn}}
GALLERY_PUBLIC_URL={{public_url}}
GALLERY_RELEASE={{release}}
GALLERY_BEHIND_PROXY=true
GALLERY_DRAIN_SECS={{drain_secs}}
GALLERY_LOG_JSON=true
# Longer than the load balancer's 60 s idle timeout, so it never reuses a connection we are closing.
GALLERY_HEADER_TIMEOUT_SECS=65
ENV
chmod 0640 /etc/gallery/gallery.env
chgrp gallery /etc/gallery/gallery.env

# 3. A hardened service that restarts on failure.
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
Restart=on-failure
RestartSec=2
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
