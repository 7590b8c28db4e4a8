// Swagger UI's start-up for /docs. It lives in a file of the service's own origin, not in the
// page, so the page runs under `script-src 'self'` with no 'unsafe-inline'.
// validatorUrl null: Swagger UI would otherwise load a badge from validator.swagger.io.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
})();
