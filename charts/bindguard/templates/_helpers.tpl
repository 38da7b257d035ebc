{{/* The name of every object the chart creates. */}}
{{- define "bindguard.name" -}}
{{- default .Release.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "bindguard.labels" -}}
app.kubernetes.io/name: bindguard
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.extraLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The pods' selector. */}}
{{- define "bindguard.selector" -}}
app.kubernetes.io/name: bindguard
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The ServiceAccount's user name, as the API server and the webhook see it. */}}
{{- define "bindguard.user" -}}
system:serviceaccount:{{ .Release.Namespace }}:{{ include "bindguard.name" . }}
{{- end -}}
