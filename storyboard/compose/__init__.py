"""The compositor: page geometry (pure), the PNG page (Pillow) and the HTML page (jinja2)."""
