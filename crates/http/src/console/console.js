// Keyturn console: copy buttons. Served by the server itself (the pages allow their own
// script only). The pages work without it: every value is shown as selectable text, and the
// buttons stay hidden until this script shows them.
(function () {
  'use strict';

  // The Clipboard API where the page is a secure context (https, localhost); otherwise the
  // older selection-and-copy command.
  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement('textarea');
      area.value = text;
      area.setAttribute('readonly', '');
      area.className = 'offscreen';
      document.body.appendChild(area);
      area.select();
      var done = false;
      try {
        done = document.execCommand('copy');
      } catch (e) {
        done = false;
      }
      document.body.removeChild(area);
      if (done) {
        resolve();
      } else {
        reject(new Error('copy refused'));
      }
    });
  }

  function start() {
    var buttons = document.querySelectorAll('button[data-copy]');
    Array.prototype.forEach.call(buttons, function (button) {
      var id = button.getAttribute('data-copy');
      var source = document.getElementById(id);
      var status = document.getElementById(id + '-status');
      if (!source) {
        return;
      }
      button.hidden = false;
      button.addEventListener('click', function () {
        copy(source.textContent).then(function () {
          if (status) {
            status.textContent = 'Copied.';
          }
        }, function () {
          if (status) {
            status.textContent = 'Could not copy: select the text and copy it.';
          }
        });
      });
    });
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
