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
{{- if hasKey $server "auth" }}
{{- fail "config.server.auth is set by the chart (the token in the Secret, mounted as a file): remove it, set webhookToken or existingSecret instead" }}
{{- end }}
{{- if hasKey (default (dict) $config.database) "url" }}
{{- fail "config.database.url would put the database password in a ConfigMap: set databaseUrl (or existingSecret's key database-url) instead" }}
{{- end }}
{{- $notifiers := default (dict) $config.notifiers }}
{{- range $name, $notifier := $notifiers }}
{{- $notifier = default (dict) $notifier }}
{{- range $key := list "routing_key" "bearer_token" }}
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
{{- end }}

{{/*
medic.yaml: the user's config with the chart's own keys. log.format defaults to json; the
listen address and the token file are always the chart's.
*/}}
{{- define "medic.configFile" -}}
{{- include "medic.checkConfig" . }}
{{- $config := mustMergeOverwrite (dict "log" (dict "format" "json")) (deepCopy .Values.config) }}
{{- $server := default (dict) $config.server }}
{{- $_ := set $server "listen" (printf "0.0.0.0:%d" (int .Values.containerPort)) }}
{{- $_ = set $server "auth" (dict "bearer_token_file" (printf "%s/webhook-token" (include "medic.tokenDir" .))) }}
{{- $_ = set $config "server" $server }}
{{- toYaml $config }}
{{- end }}
