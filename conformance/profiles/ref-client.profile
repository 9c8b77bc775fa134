# The features dcs-client (ref-client/) claims, as conformance/run-ref runs it:
#   dcs-client --jobs conformance/profiles/ref-jobs.json \
#              --tokens conformance/profiles/ref-tokens.json
# Format: spec/TRANSCRIPTS.md section 6.
feature hmac --secret-file {secret}
feature stdin-commands
feature error-log
feature jobs
feature tokens
