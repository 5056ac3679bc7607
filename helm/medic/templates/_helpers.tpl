{{/* Names, labels and the pieces shared by several templates. */}}

{{- define "medic.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: release name, unless it already holds the chart's name. */}}
{{- define "medic.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "medic.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "medic.labels" -}}
helm.sh/chart: {{ include "medic.chart" . }}
{{ include "medic.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "medic.selectorLabels" -}}
app.kubernetes.io/name: {{ include "medic.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "medic.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "medic.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret medic reads: the user's existingSecret, or the chart's own. */}}
{{- define "medic.secretName" -}}
{{- default (include "medic.fullname" .) .Values.existingSecret }}
{{- end }}

{{- define "medic.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Where the webhook token is mounted; server.auth.bearer_token_file points here. */}}
{{- define "medic.tokenDir" -}}/etc/medic/secrets{{- end }}

{{/* Where the users' tokens are mounted, one file per user named after them (token_file). */}}
{{- define "medic.usersDir" -}}/etc/medic/users{{- end }}

{{/*
The API's users, checked, as JSON: [{index, name, role, secret, key, chartSecret, ids}], secret
and key naming the Secret key that holds the user's token: key user-<name> of the chart's
Secret (chartSecret: true), or secretKey (default user-<name>) of the user's existingSecret,
else of the release's; ids holds slack_user_id and pagerduty_user_id when given (not secrets).
The tokens themselves stay out of it. Templates read it with `include "medic.users" . | fromJsonArray`.
*/}}
{{- define "medic.users" -}}
{{- $users := list }}
{{- $names := dict }}
{{- $tokens := dict }}
{{- $ids := dict }}
{{- if and .Values.webhookToken (not .Values.existingSecret) }}
{{- $_ := set $tokens (trim .Values.webhookToken) "webhookToken" }}
{{- end }}
{{- range $i, $user := .Values.users }}
{{- $name := toString $user.name }}
{{- $at := printf "users[%d] (%s)" $i $name }}
{{- if or (gt (len $name) 63) (not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $name)) }}
{{- fail (printf "users[%d].name %q: use lower case letters, digits and '-' (a DNS label, at most 63): it names the token's file and Secret key" $i $name) }}
{{- end }}
{{- if hasKey $names $name }}
{{- fail (printf "users[%d].name %q: %s already has this name (medic records acknowledgements by name)" $i $name (get $names $name)) }}
{{- end }}
{{- $_ := set $names $name (printf "users[%d]" $i) }}
{{- if not (has (toString $user.role) (list "viewer" "responder" "admin")) }}
{{- fail (printf "%s: role %q is none of viewer, responder, admin" $at (toString $user.role)) }}
{{- end }}
{{- $secret := "" }}
{{- $key := default (printf "user-%s" $name) $user.secretKey }}
{{- /* medic trims the token it reads: so does this check. */}}
{{- $token := trim (toString (default "" $user.token)) }}
{{- if $user.existingSecret }}
{{- if $user.token }}
{{- fail (printf "%s: token and existingSecret are both set: the token is key %s of the Secret %s; drop token" $at $key $user.existingSecret) }}
{{- end }}
{{- $secret = $user.existingSecret }}
{{- else if $.Values.existingSecret }}
{{- $secret = $.Values.existingSecret }}
{{- else }}
{{- if $user.secretKey }}
{{- fail (printf "%s: secretKey names a key of an existing Secret: set existingSecret (the user's or the release's), or drop secretKey (the chart's Secret uses user-%s)" $at $name) }}
{{- end }}
{{- if not $token }}
{{- fail (printf "%s: token is empty: set it, or keep it in a Secret of yours (existingSecret, the user's or the release's)" $at) }}
{{- end }}
{{- if lt (len $token) 16 }}
{{- fail (printf "%s: token is shorter than 16 characters: medic refuses it (e.g. openssl rand -hex 24)" $at) }}
{{- end }}
{{- if hasKey $tokens $token }}
{{- fail (printf "%s: token is the same as %s's: medic refuses to start unless every credential is its own" $at (get $tokens $token)) }}
{{- end }}
{{- $_ = set $tokens $token (printf "users[%d]" $i) }}
{{- $secret = include "medic.fullname" $ }}
{{- end }}
{{- /* Slack and PagerDuty name the person acting by these IDs: each may be one user's only. */}}
{{- $userIds := dict }}
{{- range $idKey := list "slack_user_id" "pagerduty_user_id" }}
{{- with trim (toString (default "" (get $user $idKey))) }}
{{- $seen := printf "%s %s" $idKey . }}
{{- if hasKey $ids $seen }}
{{- fail (printf "%s: %s %s is %s's too: medic could not tell who acted" $at $idKey . (get $ids $seen)) }}
{{- end }}
{{- $_ := set $ids $seen (printf "users[%d]" $i) }}
{{- $_ = set $userIds $idKey . }}
{{- end }}
{{- end }}
{{- $users = append $users (dict "index" $i "name" $name "role" (toString $user.role) "secret" $secret "key" $key "chartSecret" (not (or $user.existingSecret $.Values.existingSecret)) "ids" $userIds) }}
{{- end }}
{{- toJson $users }}
{{- end }}

{{/*
server.auth.proxy from authProxy, checked; empty when authProxy.enabled is false.
*/}}
{{- define "medic.authProxy" -}}
{{- $proxy := .Values.authProxy }}
{{- if $proxy.enabled }}
{{- if not $proxy.userHeader }}
{{- fail "authProxy.userHeader is empty: name the header the proxy puts the user in (X-Forwarded-Email for oauth2-proxy)" }}
{{- end }}
{{- if not $proxy.trustedSources }}
{{- fail "authProxy.trustedSources is empty: list the proxy's addresses (CIDRs), or anyone reaching medic could claim to be any user" }}
{{- end }}
{{- if not (or $proxy.roles $proxy.defaultRole) }}
{{- fail "authProxy needs roles (group -> role) or defaultRole: otherwise medic refuses every user the proxy names" }}
{{- end }}
{{- if and $proxy.roles (not $proxy.groupsHeader) }}
{{- fail "authProxy.roles maps groups to roles, but authProxy.groupsHeader is empty: name the header listing the user's groups (X-Forwarded-Groups for oauth2-proxy)" }}
{{- end }}
{{- $_ := include "medic.proxySecret" . }}
{{- $out := dict "user_header" $proxy.userHeader "trusted_sources" $proxy.trustedSources "secret_file" (include "medic.proxySecretFile" .) }}
{{- with $proxy.secretHeader }}{{ $_ = set $out "secret_header" . }}{{ end }}
{{- with $proxy.groupsHeader }}{{ $_ = set $out "groups_header" . }}{{ end }}
{{- with $proxy.roles }}{{ $_ = set $out "roles" . }}{{ end }}
{{- with $proxy.defaultRole }}{{ $_ = set $out "default_role" . }}{{ end }}
{{- toJson $out }}
{{- end }}
{{- end }}

{{/* Where the proxy's secret is mounted (no subPath: medic reads it again when it changes). */}}
{{- define "medic.proxyDir" -}}/etc/medic/proxy{{- end }}
{{- define "medic.proxySecretFile" -}}{{ include "medic.proxyDir" . }}/secret{{- end }}

{{/*
The Secret key holding the proxy's secret, checked, as JSON {secret, key, chartSecret}: key
proxy-secret of the chart's Secret (chartSecret: true; authProxy.secret, else kept, else
generated), or authProxy.secretKey (default proxy-secret) of authProxy.existingSecret, else of
the release's existingSecret.
*/}}
{{- define "medic.proxySecret" -}}
{{- $proxy := .Values.authProxy }}
{{- $key := default "proxy-secret" $proxy.secretKey }}
{{- if $proxy.existingSecret }}
{{- if $proxy.secret }}
{{- fail (printf "authProxy.secret and authProxy.existingSecret are both set: the secret is key %s of the Secret %s; drop authProxy.secret" $key $proxy.existingSecret) }}
{{- end }}
{{- toJson (dict "secret" $proxy.existingSecret "key" $key "chartSecret" false) }}
{{- else if .Values.existingSecret }}
{{- toJson (dict "secret" .Values.existingSecret "key" $key "chartSecret" false) }}
{{- else }}
{{- if $proxy.secretKey }}
{{- fail "authProxy.secretKey names a key of an existing Secret: set existingSecret (authProxy's or the release's), or drop secretKey (the chart's Secret uses proxy-secret)" }}
{{- end }}
{{- toJson (dict "secret" (include "medic.fullname" .) "key" "proxy-secret" "chartSecret" true) }}
{{- end }}
{{- end }}

{{/*
A value the chart generated before, from the Secret this release already has (so upgrades keep
it); empty when there is none. `lookup` finds nothing under `helm template` or --dry-run.
Usage: include "medic.keptSecret" (dict "root" . "key" "webhook-token").
*/}}
{{- define "medic.keptSecret" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace (include "medic.fullname" .root) }}
{{- if and $existing $existing.data (index $existing.data .key) }}
{{- index $existing.data .key | b64dec }}
{{- end }}
{{- end }}

{{/* The Ingress of the integration endpoints (integrations.ingress). */}}
{{- define "medic.integrationsIngressName" -}}
{{- printf "%s-integrations" (include "medic.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Where alertmanagerToken is mounted (beside the webhook token); alertmanager.bearer_token_file. */}}
{{- define "medic.alertmanagerTokenFile" -}}
{{- printf "%s/alertmanager-token" (include "medic.tokenDir" .) }}
{{- end }}

{{/*
The notifiers' secret keys: never inline in the ConfigMap, always through notifierSecrets
(or <key>_file, a file of the user's). values.schema.json's notifierSecrets takes these and
url (a Slack webhook's, refused inline for type slack only: a webhook notifier's url is none).
*/}}
{{- define "medic.notifierSecretKeys" -}}
{{- toJson (list "routing_key" "bearer_token" "bot_token" "signing_secret" "webhook_secret") }}
{{- end }}

{{/* Secret key of one notifier secret: notifier-<name>-<key>, "_" written "-". */}}
{{- define "medic.notifierSecretKey" -}}
{{- printf "notifier-%s-%s" .name (.key | replace "_" "-") }}
{{- end }}

{{/*
Environment variable of one notifier secret, as medic reads it:
MEDIC_NOTIFIERS__<NAME>__<KEY>, upper case, "-" written "_".
*/}}
{{- define "medic.notifierEnvName" -}}
{{- printf "MEDIC_NOTIFIERS__%s__%s" (.name | upper | replace "-" "_") (.key | upper) }}
{{- end }}

{{/*
Refuses values that would put a secret into the ConfigMap, or that clash with what the chart
sets itself. The schema cannot say this as clearly.
*/}}
{{- define "medic.checkConfig" -}}
{{- $config := .Values.config }}
{{- $server := default (dict) $config.server }}
{{- if hasKey $server "listen" }}
{{- fail "config.server.listen is set by the chart (0.0.0.0:<containerPort>): remove it, set containerPort instead" }}
{{- end }}
{{- with omit (default (dict) $server.auth) "jwt" }}
{{- fail (printf "config.server.auth.%s is set by the chart (tokens in the Secret, mounted as files): remove it, set webhookToken, users, authProxy or existingSecret instead; only config.server.auth.jwt (token issuers, no secret) is taken from config" (keys . | sortAlpha | first)) }}
{{- end }}
{{- if hasKey (default (dict) $config.database) "url" }}
{{- fail "config.database.url would put the database password in a ConfigMap: set databaseUrl (or existingSecret's key database-url) instead" }}
{{- end }}
{{- $notifiers := default (dict) $config.notifiers }}
{{- range $name, $notifier := $notifiers }}
{{- $notifier = default (dict) $notifier }}
{{- range $key := include "medic.notifierSecretKeys" $ | fromJsonArray }}
{{- if hasKey $notifier $key }}
{{- fail (printf "config.notifiers.%s.%s is a secret: set notifierSecrets.%s.%s instead" $name $key $name $key) }}
{{- end }}
{{- end }}
{{- if and (eq (toString $notifier.type) "slack") (hasKey $notifier "url") }}
{{- fail (printf "config.notifiers.%s.url (a Slack webhook URL) is a secret: set notifierSecrets.%s.url instead" $name $name) }}
{{- end }}
{{- end }}
{{- range $name, $_ := .Values.notifierSecrets }}
{{- if not (hasKey $notifiers $name) }}
{{- fail (printf "notifierSecrets.%s: no notifier %q in config.notifiers (medic reads a notifier's secret variables only for notifiers its file names)" $name $name) }}
{{- end }}
{{- end }}
{{- $alertmanager := default (dict) $config.alertmanager }}
{{- if hasKey $alertmanager "bearer_token" }}
{{- fail "config.alertmanager.bearer_token would put a secret in the ConfigMap: set alertmanagerToken instead (stored in the Secret, mounted as a file; with existingSecret, its key alertmanager-token)" }}
{{- end }}
{{- if .Values.alertmanagerToken }}
{{- if hasKey $alertmanager "bearer_token_file" }}
{{- fail "config.alertmanager.bearer_token_file is set by the chart when alertmanagerToken is: remove one of them" }}
{{- end }}
{{- if not $alertmanager.url }}
{{- fail "alertmanagerToken is set but config.alertmanager.url is not: medic sends the token only to that Alertmanager (for silences)" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
medic.yaml: the user's config with the chart's own keys. log.format defaults to json; the
listen address and server.auth are always the chart's: the webhook token's file, the users
(name, role and token_file, never a token; their Slack and PagerDuty IDs) and the proxy, with
config.server.auth.jwt (token issuers) passed through as given; and
alertmanager.bearer_token_file when alertmanagerToken is set.
*/}}
{{- define "medic.configFile" -}}
{{- include "medic.checkConfig" . }}
{{- $config := mustMergeOverwrite (dict "log" (dict "format" "json")) (deepCopy .Values.config) }}
{{- $server := default (dict) $config.server }}
{{- $_ := set $server "listen" (printf "0.0.0.0:%d" (int .Values.containerPort)) }}
{{- $auth := dict "bearer_token_file" (printf "%s/webhook-token" (include "medic.tokenDir" .)) }}
{{- $users := list }}
{{- range include "medic.users" . | fromJsonArray }}
{{- $users = append $users (mustMerge (dict "name" .name "role" .role "token_file" (printf "%s/%s" (include "medic.usersDir" $) .name)) .ids) }}
{{- end }}
{{- with $users }}{{ $_ = set $auth "users" . }}{{ end }}
{{- with include "medic.authProxy" . }}{{ $_ = set $auth "proxy" (fromJson .) }}{{ end }}
{{- with (default (dict) $server.auth).jwt }}{{ $_ = set $auth "jwt" . }}{{ end }}
{{- $_ = set $server "auth" $auth }}
{{- $_ = set $config "server" $server }}
{{- if .Values.alertmanagerToken }}
{{- $_ = set $config "alertmanager" (mustMerge (dict "bearer_token_file" (include "medic.alertmanagerTokenFile" .)) (default (dict) $config.alertmanager)) }}
{{- end }}
{{- toYaml $config }}
{{- end }}
