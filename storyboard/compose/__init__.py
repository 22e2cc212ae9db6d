"""The compositor: page geometry (pure), text setting and fonts, and the PNG, PDF and HTML pages drawn from them."""
