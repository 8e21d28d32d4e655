// Starts Swagger UI on the API's own OpenAPI document. A file, not an inline script, so the page's
// Content-Security-Policy can allow scripts from this origin only.
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.spec,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null, // no call to the public validator: the page works air-gapped
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
