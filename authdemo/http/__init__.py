"""The HTTP half: the Sanic app (``create_app``), the page, cookies, tickets, security
headers, host and proxy checks, websocket handshake limits, health and ``current_user``.

It answers requests (the stylesheet and client files are served by the bridge); what a websocket renders lives in :mod:`authdemo.ui`.
"""
