"""CIM-XML over HTTP(S) (DSP0200/DSP0201): request parser, response writer, dispatcher."""
