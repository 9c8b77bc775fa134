# The features dcs-server (ref-server/) claims, as conformance/run-ref runs it.
# Format: spec/TRANSCRIPTS.md section 6.
feature hmac --secret-file {secret}
feature lenient --lenient
feature commands
feature error-log
