{{/* Names and labels, as `helm create` lays them out. */}}
{{- define "stubhost.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "stubhost.fullname" -}}
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

{{- define "stubhost.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "stubhost.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "stubhost.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stubhost.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "stubhost.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "stubhost.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The grace period: preStop, then the whole drain, then a margin (see values "shutdown"). */}}
{{- define "stubhost.terminationGracePeriodSeconds" -}}
{{- add .Values.shutdown.preStopSleepSecs .Values.server.exitTimeoutSecs .Values.shutdown.graceMarginSecs }}
{{- end }}

{{/* One restricted-API flag value: `<apis>:<header>=<value>`, the value from an env var when it comes from a Secret. */}}
{{- define "stubhost.restricted" -}}
{{- $entry := index . 0 }}{{ $names := index . 1 }}{{ $env := index . 2 }}
{{- $value := $entry.value }}
{{- if $entry.secretKeyRef }}{{ $value = printf "$(%s)" $env }}{{ end }}
{{- printf "%s:%s=%s" (join "," $names) $entry.header $value }}
{{- end }}
