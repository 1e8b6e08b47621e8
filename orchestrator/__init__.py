from orchestrator.scrubbing import install_log_scrubbing as _install_log_scrubbing

_install_log_scrubbing()  # no log record of this process carries a credential (see diagnosis.normalize)
