"""The UI half: the Sanic-to-IDOM/ReactPy bridge, which UI library renders (``library``),
the live connection of one view (``connection``), the hooks and the components.

It renders views over the websocket; the requests that lead there are
:mod:`authdemo.http`'s.
"""
