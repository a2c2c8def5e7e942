"""Who may do what: HTTP Basic authentication (users file, PAM), roles, the audit log.

``policy`` holds the decision table, ``users`` the argon2 users file, ``pam`` local accounts,
``limiter`` the per-source back-off of failed logins, ``basic`` the authenticator the CIM-XML
handler calls, ``audit`` and ``jobwatch`` the audit log, ``setup`` builds them from Settings.
See docs/security.md.
"""
