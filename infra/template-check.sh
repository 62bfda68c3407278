#!/usr/bin/env bash
# Lints template.yaml: cfn-lint, then `sam validate` (SAM's transform) and `sam validate --lint`.
# Offline: needs no AWS account or credentials (dummy ones are set, so that no profile, SSO or
# instance metadata is ever looked up). Exits non-zero on any error or warning.
#
# Tools: aws-sam-cli (pinned) with cfn-lint (pinned, the version infra/test.sh pins) in their own
# venv, "$OMNILINE_VENV/sam-cli" (OMNILINE_VENV defaults to .venv; override the whole path with
# OMNILINE_SAM_VENV). Their own venv because aws-sam-cli pins boto3, botocore, click and pydantic
# to versions other than those moto and schemathesis use in $OMNILINE_VENV.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=infra/lib.sh
. "$root/infra/lib.sh"

SAM_CLI_VERSION=1.170.0
CFN_LINT_VERSION=1.58.0
VENV=${OMNILINE_VENV:-$root/.venv}
SAM_VENV=${OMNILINE_SAM_VENV:-$VENV/sam-cli}
TEMPLATE=${OMNILINE_TEMPLATE:-$root/template.yaml}
REGION=ap-northeast-1

log "aws-sam-cli $SAM_CLI_VERSION, cfn-lint $CFN_LINT_VERSION in $SAM_VENV"
pip_pinned "$SAM_VENV" "aws-sam-cli==$SAM_CLI_VERSION" "cfn-lint==$CFN_LINT_VERSION"

# No real account, profile or network lookup: dummy credentials, no config files, no telemetry.
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=$REGION AWS_DEFAULT_REGION=$REGION
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
export SAM_CLI_TELEMETRY=0 SAM_CLI_CONTACT_TRACKING=0
# sam writes its metadata (~/.aws-sam) under HOME; keep it out of the user's.
export HOME=${OMNILINE_SAM_HOME:-$root/.tmp/sam-home}
mkdir -p "$HOME"

log "cfn-lint $(basename "$TEMPLATE")"
"$SAM_VENV/bin/cfn-lint" "$TEMPLATE"

log "sam validate (SAM transform)"
"$SAM_VENV/bin/sam" validate --template "$TEMPLATE" --region "$REGION"

log "sam validate --lint"
"$SAM_VENV/bin/sam" validate --lint --template "$TEMPLATE" --region "$REGION"

log "template.yaml: valid"
