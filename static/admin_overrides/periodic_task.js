// django-celery-beat's inline script for the periodic task form, as a file (see the template
// templates/admin/djcelery/change_periodictask_form.html): shows the chosen crontab in words.
(function () {
  "use strict";
  var $ = window.django.jQuery;
  var readableCrontabs = JSON.parse(document.getElementById("readable-crontabs").textContent);
  var originalHelp = JSON.parse(document.getElementById("crontab-help-text").textContent);

  function updateCrontabHelp(additional) {
    var help = $(".field-crontab .help");
    help.text(originalHelp);
    help.append($("<br>"), document.createTextNode("Translation: " + (additional || "")));
  }

  $(".field-crontab_translation").hide();
  $(".field-crontab").change(function () {
    updateCrontabHelp(readableCrontabs[$("#id_crontab").val()]);
  });
})();
