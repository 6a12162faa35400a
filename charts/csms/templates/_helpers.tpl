{{/* The chart name, or nameOverride. */}}
{{- define "csms.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name: the prefix of every resource. */}}
{{- define "csms.fullname" -}}
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

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "csms.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every resource; the version labels stay out of selectors. */}}
{{- define "csms.labels" -}}
helm.sh/chart: {{ include "csms.chart" . }}
{{ include "csms.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: csms
{{- end }}

{{/* Selector labels: name and instance only (a component label is added per workload). */}}
{{- define "csms.selectorLabels" -}}
app.kubernetes.io/name: {{ include "csms.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The image reference: a digest wins over a tag; the tag defaults to appVersion. */}}
{{- define "csms.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* Whether a Redis is configured: external, or the bundled one. */}}
{{- define "csms.redisEnabled" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret .Values.redis.bundled.enabled -}}
true
{{- end -}}
{{- end }}

{{/* Whether the bundled Redis runs (only when no external one is given). */}}
{{- define "csms.bundledRedis" -}}
{{- if and .Values.redis.bundled.enabled (not .Values.redis.url) (not .Values.redis.existingSecret) -}}
true
{{- end -}}
{{- end }}

{{/* The environment that names Redis: CSMS_REDIS_URL and CSMS_REDIS_PREFIX. */}}
{{- define "csms.redisEnv" -}}
{{- if .Values.redis.existingSecret }}
- name: CSMS_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret }}
      key: {{ .Values.redis.existingSecretKey }}
{{- else if .Values.redis.url }}
- name: CSMS_REDIS_URL
  value: {{ .Values.redis.url | quote }}
{{- else if include "csms.bundledRedis" . }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "csms.fullname" . }}-redis
      key: password
- name: CSMS_REDIS_URL
  value: "redis://:$(REDIS_PASSWORD)@{{ include "csms.fullname" . }}-redis:6379/0"
{{- end }}
{{- if include "csms.redisEnabled" . }}
- name: CSMS_REDIS_PREFIX
  value: {{ .Values.redis.prefix | quote }}
{{- end }}
{{- end }}

{{/* OpenTelemetry's standard variables, when tracing has an endpoint. */}}
{{- define "csms.tracingEnv" -}}
{{- with .Values.tracing }}
{{- if .endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: http/protobuf
- name: OTEL_SERVICE_NAME
  value: {{ include "csms.fullname" $ | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ .sampler | quote }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .samplerArg | quote }}
- name: OTEL_RESOURCE_ATTRIBUTES
  {{- $attributes := list (printf "k8s.pod.name=$(CSMS_POD_NAME)") (printf "k8s.namespace.name=%s" $.Release.Namespace) (printf "service.version=%s" $.Chart.AppVersion) }}
  {{- range $key, $value := .resourceAttributes }}
  {{- $attributes = append $attributes (printf "%s=%s" $key $value) }}
  {{- end }}
  value: {{ join "," $attributes | quote }}
{{- if .headersSecret }}
- name: OTEL_EXPORTER_OTLP_HEADERS
  valueFrom:
    secretKeyRef:
      name: {{ .headersSecret }}
      key: {{ .headersSecretKey }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Secret holding the API tokens. */}}
{{- define "csms.apiSecretName" -}}
{{- default (printf "%s-api" (include "csms.fullname" .)) .Values.api.existingSecret }}
{{- end }}

{{/* The key of the API tokens in that Secret. */}}
{{- define "csms.apiTokenKey" -}}
{{- .Values.api.existingSecret | empty | ternary "tokens" .Values.api.existingSecretKey }}
{{- end }}

{{/* The operator's ServiceAccount. */}}
{{- define "csms.operatorServiceAccount" -}}
{{- if .Values.operator.rbac.create -}}
{{ include "csms.fullname" . }}-operator
{{- else -}}
{{ default "default" .Values.operator.serviceAccountName }}
{{- end -}}
{{- end }}

{{/* http or https on the internal port: csms's own TLS covers both ports. */}}
{{- define "csms.scheme" -}}
{{- if .Values.tls.secretName }}HTTPS{{ else }}HTTP{{ end -}}
{{- end }}

{{/* A random value kept across upgrades: the one already in the Secret, if any. */}}
{{- define "csms.keptSecret" -}}
{{- $secret := lookup "v1" "Secret" .namespace .name -}}
{{- if and $secret (index ($secret.data | default dict) .key) -}}
{{ index $secret.data .key }}
{{- else -}}
{{ randAlphaNum 40 | b64enc }}
{{- end -}}
{{- end }}
