"""The WS-Management front end (issue 11): WMI over WS-Man (MS-WSMV) at ``POST /wsman``, served
by the HTTP layer of :mod:`vsms.wbem.server` through :class:`vsms.wsman.handler.WsmanHandler`."""
