"""The HTTP half: the Sanic app (``create_app``), the page, cookies, tickets, security
headers, host and proxy checks, websocket handshake limits, health and ``current_user``.

It answers requests; what a websocket renders (and the stylesheet and client files the
bridge serves) lives in :mod:`authdemo.ui`.
"""
