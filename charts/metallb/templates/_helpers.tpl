{{/* Names and labels shared by every template. */}}

{{- define "metallb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "metallb.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "metallb.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}

{{/* Where FRRConfigurations live and frr-k8s runs. */}}
{{- define "metallb.frrk8sNamespace" -}}
{{- default (include "metallb.namespace" .) .Values.frrk8s.namespace -}}
{{- end -}}

{{- define "metallb.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "metallb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "metallb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "metallb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "metallb.image" -}}
{{- $img := index . 0 -}}{{- $ctx := index . 1 -}}
{{- printf "%s:%s" $img.repository (default $ctx.Chart.AppVersion $img.tag) -}}
{{- end -}}

{{/* The FRR container's image: speaker.frr.image, else the speaker image (same vtysh). */}}
{{- define "metallb.frrImage" -}}
{{- if .Values.speaker.frr.image.repository -}}
{{- include "metallb.image" (list .Values.speaker.frr.image .) -}}
{{- else -}}
{{- include "metallb.image" (list .Values.speaker.image .) -}}
{{- end -}}
{{- end -}}

{{- define "metallb.frrk8sImage" -}}
{{- if .Values.frrk8s.image.repository -}}
{{- include "metallb.image" (list .Values.frrk8s.image .) -}}
{{- else -}}
{{- include "metallb.image" (list .Values.speaker.image .) -}}
{{- end -}}
{{- end -}}

{{- define "metallb.controller.serviceAccountName" -}}
{{- if .Values.controller.serviceAccount.create -}}
{{- default (printf "%s-controller" (include "metallb.fullname" .)) .Values.controller.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.controller.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "metallb.speaker.serviceAccountName" -}}
{{- if .Values.speaker.serviceAccount.create -}}
{{- default (printf "%s-speaker" (include "metallb.fullname" .)) .Values.speaker.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.speaker.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "metallb.frrk8s.serviceAccountName" -}}
{{- if .Values.frrk8s.serviceAccount.create -}}
{{- default (printf "%s-frr-k8s" (include "metallb.fullname" .)) .Values.frrk8s.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.frrk8s.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The FRR webhook runs wherever FRRConfigurations are consumed. */}}
{{- define "metallb.frrWebhook.enabled" -}}
{{- if or .Values.frrk8s.enabled .Values.speaker.enabled -}}true{{- end -}}
{{- end -}}

{{/* Shared FRR pod parts: the startup files' init container, the FRR container, volumes. */}}
{{- define "metallb.frr.initContainer" -}}
- name: cp-frr-files
  image: {{ include "metallb.frrImage" . }}
  imagePullPolicy: {{ .Values.speaker.frr.image.pullPolicy }}
  command: ["/bin/sh", "-c", "cp -rLf /tmp/frr/* /etc/frr/"]
  volumeMounts:
    - name: frr-startup
      mountPath: /tmp/frr
    - name: frr-conf
      mountPath: /etc/frr
{{- end -}}

{{- define "metallb.frr.container" -}}
- name: frr
  image: {{ include "metallb.frrImage" . }}
  imagePullPolicy: {{ .Values.speaker.frr.image.pullPolicy }}
  securityContext:
    capabilities:
      add: ["NET_ADMIN", "NET_RAW", "SYS_ADMIN", "NET_BIND_SERVICE"]
  # frrinit.sh starts the daemons listed in /etc/frr/daemons under watchfrr, which restarts
  # any that dies, as FRR's own images' docker-start does; SIGTERM stops them cleanly.
  command:
    - /bin/bash
    - -c
    - |
      chown -R frr:frr /etc/frr /var/run/frr || true
      trap '/usr/lib/frr/frrinit.sh stop; exit 0' TERM INT
      /usr/lib/frr/frrinit.sh start
      sleep infinity & wait $!
  volumeMounts:
    - name: frr-sockets
      mountPath: /var/run/frr
    - name: frr-conf
      mountPath: /etc/frr
  {{- with .Values.speaker.frr.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  livenessProbe:
    exec:
      command: ["/bin/sh", "-c", "{{ .Values.speaker.frr.vtysh }} -c 'show version' >/dev/null"]
    periodSeconds: 10
    failureThreshold: 3
  startupProbe:
    exec:
      command: ["/bin/sh", "-c", "{{ .Values.speaker.frr.vtysh }} -c 'show version' >/dev/null"]
    periodSeconds: 5
    failureThreshold: 30
{{- end -}}

{{- define "metallb.frr.volumes" -}}
- name: frr-sockets
  emptyDir: {}
- name: frr-startup
  configMap:
    name: {{ include "metallb.fullname" . }}-frr-startup
- name: frr-conf
  emptyDir: {}
{{- end -}}

{{- define "metallb.probes" -}}
{{- $p := index . 0 -}}
{{- if $p.livenessProbe.enabled }}
livenessProbe:
  httpGet:
    path: /healthz
    port: monitoring
  initialDelaySeconds: {{ $p.livenessProbe.initialDelaySeconds }}
  periodSeconds: {{ $p.livenessProbe.periodSeconds }}
  failureThreshold: {{ $p.livenessProbe.failureThreshold }}
{{- end }}
{{- if $p.readinessProbe.enabled }}
readinessProbe:
  httpGet:
    path: /readyz
    port: monitoring
  initialDelaySeconds: {{ $p.readinessProbe.initialDelaySeconds }}
  periodSeconds: {{ $p.readinessProbe.periodSeconds }}
  failureThreshold: {{ $p.readinessProbe.failureThreshold }}
{{- end }}
{{- end -}}

{{/*
The webhook serving certificate's Secret. webhooks.certificates=self: an empty Secret the
component fills (and renews); certManager: a Certificate (and a self-signed Issuer unless
one is named) that cert-manager keeps in that Secret.
Arguments: (list $ ns secretName serviceName)
*/}}
{{- define "metallb.webhookCert" -}}
{{- $ := index . 0 -}}{{- $ns := index . 1 -}}{{- $secret := index . 2 -}}{{- $svc := index . 3 -}}
{{- if eq $.Values.webhooks.certificates "certManager" -}}
{{- $issuer := $.Values.webhooks.certManager.issuerRef -}}
{{- if not $issuer.name }}
apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: {{ $secret }}-selfsigned
  namespace: {{ $ns }}
  labels:
    {{- include "metallb.labels" $ | nindent 4 }}
spec:
  selfSigned: {}
---
{{- end }}
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: {{ $secret }}
  namespace: {{ $ns }}
  labels:
    {{- include "metallb.labels" $ | nindent 4 }}
spec:
  secretName: {{ $secret }}
  dnsNames:
    - {{ $svc }}.{{ $ns }}.svc
    - {{ $svc }}.{{ $ns }}.svc.cluster.local
  issuerRef:
    {{- if $issuer.name }}
    {{- toYaml $issuer | nindent 4 }}
    {{- else }}
    name: {{ $secret }}-selfsigned
    kind: Issuer
    {{- end }}
{{- else -}}
apiVersion: v1
kind: Secret
metadata:
  name: {{ $secret }}
  namespace: {{ $ns }}
  labels:
    {{- include "metallb.labels" $ | nindent 4 }}
# No data here: the serving component fills it (ca.crt, tls.crt, tls.key) and renews it.
# The chart never sets data, so an upgrade does not wipe the certificate.
type: Opaque
{{- end -}}
{{- end -}}

{{/* Upstream's log levels (all, debug, info, warn, error, none) as tracing filters. */}}
{{- define "metallb.logLevel" -}}
{{- $l := . | toString -}}
{{- if eq $l "all" -}}trace{{- else if eq $l "none" -}}off{{- else -}}{{ $l }}{{- end -}}
{{- end -}}
